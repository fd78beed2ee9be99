"""python -m vitheads.study run|status|gather|measure STUDY: queue a study's runs as DVC experiments (resumable),
say which have finished, and gather the finished ones into study/<STUDY>.json (vitheads.study.gather); for the
graded study, `measure` implants, calibrates and measures on its finished runs (vitheads.study.graded).
`python -m vitheads.study provenance` rewrites docs/results.md's table of where each study's runs ran."""

import argparse
import sys

from vitheads.study import provenance
from vitheads.study.gather import write_gathered
from vitheads.study.runner import committed_study, experiments, finished, queue_study, show
from vitheads.study.studies import STUDIES


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m vitheads.study", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["run", "status", "gather", "measure", "provenance"])
    parser.add_argument("study", nargs="?", choices=list(STUDIES), help="every command but provenance")
    parser.add_argument("--held-out", action="store_true", help="run: queue the study's held-out runs")
    parser.add_argument("--jobs", type=int, default=1, help="run: experiments side by side (they share the cores)")
    parser.add_argument("--arm", action="append", help="run: only this arm (repeatable; default: every arm)")
    parser.add_argument("--blocks", type=int, help="run: at most this many seed blocks (seed-blocked studies)")
    parser.add_argument("--model-dir", help="measure graded: a trained model directory instead of the experiments")
    parser.add_argument("--seed", type=int, help="measure graded: the seed of --model-dir's run (its test images)")
    args = parser.parse_args(argv)
    if args.command == "provenance":  # docs/results.md's table of where and on which commit every run ran
        print(provenance.rewrite())
        return
    if args.study is None:
        parser.error(f"{args.command} needs a study: one of {', '.join(STUDIES)}")
    if args.study == "graded" and args.command in ("measure", "gather"):
        graded_command(args)  # imports torch and the renderer: only this study's own commands pay for them
        return
    if args.command == "measure":
        raise SystemExit("measure is the graded study's command: python -m vitheads.study measure graded")
    if args.command == "run":
        names = queue_study(args.study, args.held_out, args.jobs, args.arm, args.blocks)
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


def graded_command(args) -> None:
    from vitheads.study import graded

    if args.command == "gather":
        graded.write_gathered()
        return
    if args.model_dir:
        if args.seed is None:
            raise SystemExit("--model-dir needs --seed (the run's seed: its test images)")
        graded.measure([(f"graded-manual-{args.seed}", args.seed, args.model_dir)])
        return
    done = finished(show(), "graded-")
    runs = [(r.name, r.seed, done[r.name]["rev"]) for r in STUDIES["graded"]() if r.name in done]
    missing = [r.name for r in STUDIES["graded"]() if r.name not in done]
    if missing:
        print(f"not trained yet (python -m vitheads.study run graded): {', '.join(missing)}")
    graded.measure(runs)


main(sys.argv[1:])
