"""The report's head explorer: its data, and the page in a real headless browser (Debian's
chromium and chromedriver, driven by selenium)."""

import base64
import json
import re
import shutil
import sys

import numpy as np
import pandas as pd
import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

from vitheads.report.explorer import outline, quantise

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


def test_quantised_maps_decode_within_one_step_of_the_log_scale():
    maps = np.random.default_rng(0).dirichlet(np.full(64, 0.3), size=(5, 2)).reshape(5, 2, 8, 8)
    vmax = 40.0
    codes = np.frombuffer(base64.b64decode(quantise(maps, vmax)), np.uint8).reshape(maps.shape)
    decoded = np.exp(codes / 255 * 2 * np.log(vmax) - np.log(vmax))  # as the page decodes
    multiples = np.clip(maps * 64, 1 / vmax, vmax)
    np.testing.assert_allclose(np.log(decoded), np.log(multiples), atol=np.log(vmax) / 255 + 1e-9)


def test_outline_is_the_border_of_a_mask():
    mask = np.zeros((6, 6), bool)
    mask[1:5, 1:5] = True
    edge = outline(mask)
    assert edge.sum() == 12 and not edge[2:4, 2:4].any() and edge[1, 1:5].all()
    assert outline(np.ones((3, 3), bool)).sum() == 8, "the image edge counts as outside"


def test_the_report_and_the_explorer_say_what_the_run_did_not_todays_params(reproduced):
    """Params edited after the run do not change what the run measured: both give its pairs and its labelling
    view, from its metrics."""
    path = reproduced.path
    run = json.loads((path / "metrics/causal.json").read_text())
    view = json.loads((path / "metrics/classify.json").read_text())["view"]
    other = {"images": run["images"] + 3, "patch_images": run["patch_images"] + 1}
    reproduced.set_params({"causal": other, "classify": {"view": "from_chirp" if view == "received" else "received"}})
    reproduced.run(sys.executable, "-m", "stages.report")
    counted = f"(first {run['patch_images']} of {run['images']} pairs)"
    markdown = (path / "report/report.md").read_text()
    assert counted in markdown and f"Labels from patch-level enrichment in the *{view}* view" in markdown
    page = (path / "report/report.html").read_text()
    data = json.loads(re.search(r'id="explorer-data">(.*?)</script>', page, re.S)[1])
    assert counted in data["causalRuleText"] and data["labelView"] == view


@pytest.fixture
def browser():
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("needs Debian's chromium and chromium-driver (apt install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1600"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(CHROMEDRIVER))
    yield driver
    driver.quit()


def shown_head(driver) -> str:
    return driver.find_element(By.ID, "ex-title").text


def wait_for_head(driver, name: str) -> None:
    WebDriverWait(driver, 10).until(lambda d: shown_head(d) == name)
    WebDriverWait(driver, 10).until(
        lambda d: all(c.get_attribute("data-drawn") for c in d.find_elements(By.CSS_SELECTOR, "#ex-maps canvas"))
    )


def pct(x: float) -> str:
    return f"{x:+.3f}%"


def table_rows(driver, table_id: str) -> list[list[str]]:
    rows = driver.find_elements(By.CSS_SELECTOR, f"#{table_id} tr")[1:]
    return [[cell.text for cell in row.find_elements(By.TAG_NAME, "td")] for row in rows]


def test_clicking_a_head_shows_its_maps_and_numbers_and_nothing_leaves_the_page(reproduced_once, browser):
    path = reproduced_once.path
    browser.get((path / "report/report.html").as_uri())
    assert not [e for e in browser.get_log("browser") if e["level"] == "SEVERE"], "the page's script failed"

    browser.find_element(By.CSS_SELECTOR, '#ex-grid td[data-name="L2H3"]').click()
    wait_for_head(browser, "L2H3")

    classified = pd.read_csv(path / "results/classify/heads.csv").set_index(["layer", "head"])
    assert browser.find_element(By.ID, "ex-label").text.startswith(f"Label: {classified.loc[(2, 3), 'label']} ")
    ablated = pd.read_csv(path / "results/ablate/heads.csv").set_index(["layer", "head", "mode"])
    effects = {row[0]: row for row in table_rows(browser, "ex-effects")}
    for mode in ("zero", "mean"):
        e = ablated.loc[(2, 3, mode)]
        assert effects[mode][1] == f"{pct(e['increase_pct'])} [{pct(e['ci_low_pct'])}, {pct(e['ci_high_pct'])}]"
        t = "Chirp_End_Freq"
        assert (
            effects[mode][4]
            == f"{pct(e[f'increase_pct_{t}'])} [{pct(e[f'ci_low_pct_{t}'])}, {pct(e[f'ci_high_pct_{t}'])}]"
        )
    chirp = (
        pd.read_csv(path / "results/classify/regions.csv").set_index(["layer", "head", "region"]).loc[(2, 3, "chirp")]
    )
    regions = {row[0]: row for row in table_rows(browser, "ex-regions")}
    assert regions["chirp"][1:3] == [f"{chirp['enrichment']:.2f}", f"[{chirp['ci_low']:.2f}, {chirp['ci_high']:.2f}]"]
    causal = pd.read_csv(path / "results/causal/heads.csv").set_index(["variant", "layer", "head"])
    shown = {row[0]: row for row in table_rows(browser, "ex-causal")}
    assert set(shown) == set(causal.index.get_level_values(0))
    title = causal.loc[("title_text", 2, 3)]
    low, high = title["sensitivity_element_ci_low"], title["sensitivity_element_ci_high"]
    assert shown["title_text"][2] == f"{title['sensitivity_element']:.3f} [{low:.3f}, {high:.3f}]"
    assert shown["title_text"][5] == "–" and shown["title_moved"][5].startswith(
        f"{causal.loc[('title_moved', 2, 3), 'follow']:.3f} ["
    )
    responds = "yes" if classified.loc[(2, 3), "responds_text"] else "no"
    assert f"text: responds {responds}, " in browser.find_element(By.ID, "ex-verdicts").text

    with np.load(path / "results/attention/examples.npz") as examples:
        received, cls = examples["received"], examples["cls"]  # [images, layers, heads, G, G]
    captions = [c.text for c in browser.find_elements(By.CSS_SELECTOR, "#ex-maps figcaption")]
    assert len(captions) == len(received)
    peaks = [float(c.split("max ")[1].rstrip("×")) for c in captions]
    grid = received.shape[-1]
    expected = received[:, 1, 2].reshape(len(received), -1).max(1) * grid * grid
    np.testing.assert_allclose(peaks, expected, rtol=0.05, atol=0.06)  # one-byte log quantisation, one decimal shown

    Select(browser.find_element(By.ID, "ex-view")).select_by_value("cls")
    WebDriverWait(browser, 10).until(lambda d: "never read" in d.find_element(By.ID, "ex-view-note").text)
    WebDriverWait(browser, 10).until(
        lambda d: all(c.get_attribute("data-drawn") for c in d.find_elements(By.CSS_SELECTOR, "#ex-maps canvas"))
    )
    peaks = [
        float(c.text.split("max ")[1].rstrip("×"))
        for c in browser.find_elements(By.CSS_SELECTOR, "#ex-maps figcaption")
    ]
    np.testing.assert_allclose(peaks, cls[:, 1, 2].reshape(len(cls), -1).max(1) * grid * grid, rtol=0.05, atol=0.06)

    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.ARROW_LEFT)
    wait_for_head(browser, "L2H2")
    search = browser.find_element(By.ID, "ex-search")
    search.send_keys("L1H1", Keys.ENTER)
    wait_for_head(browser, "L1H1")
    search.clear()
    search.send_keys("L9H9", Keys.ENTER)
    assert "no head L9H9" in browser.find_element(By.ID, "ex-search-msg").text and shown_head(browser) == "L1H1"

    requests = [json.loads(e["message"])["message"] for e in browser.get_log("performance")]
    urls = [m["params"]["request"]["url"] for m in requests if m["method"] == "Network.requestWillBeSent"]
    assert urls and all(u.startswith(("file:", "data:")) for u in urls), [
        u for u in urls if not u.startswith(("file:", "data:"))
    ]
