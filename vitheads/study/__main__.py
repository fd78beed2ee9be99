"""python -m vitheads.study run|status|gather STUDY: queue a study's runs as DVC experiments (resumable),
say which have finished, and gather the finished ones into study/<STUDY>.json (vitheads.study.gather)."""

import argparse
import sys

from vitheads.study.gather import write_gathered
from vitheads.study.runner import committed_study, experiments, queue_study, show
from vitheads.study.studies import STUDIES


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m vitheads.study", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["run", "status", "gather"])
    parser.add_argument("study", choices=list(STUDIES))
    parser.add_argument("--held-out", action="store_true", help="run: queue the study's held-out runs")
    parser.add_argument("--jobs", type=int, default=1, help="run: experiments side by side (they share the cores)")
    parser.add_argument("--arm", action="append", help="run: only this arm (repeatable; default: every arm)")
    args = parser.parse_args(argv)
    if args.command == "run":
        names = queue_study(args.study, args.held_out, args.jobs, args.arm)
        print(
            f"queued {len(names)} runs of the {args.study} study ({', '.join(names) or 'none left'}); "
            f"follow with `python -m vitheads.study status {args.study}` or `dvc queue status`"
        )
    elif args.command == "status":
        known = experiments(show(), f"{args.study}-")
        gathered = {r["name"] for r in (committed_study(args.study) or {}).get("runs", [])}
        for run in STUDIES[args.study]():
            state = "gathered (in the study file)" if run.name in gathered else "not queued"
            print(f"{run.name}: {known.get(run.name, {}).get('state', state)}")
    else:
        write_gathered(args.study)


main(sys.argv[1:])
