"""The review page in a real browser: Debian's headless Chromium driven by Selenium through Debian's
chromedriver (`make test-deps` installs both). It clicks accept / reject / regenerate and uses the keyboard,
and the test reads what was saved in RUN/decisions.json; a restarted server shows the same decisions.
Without chromium/chromedriver these tests skip, except under CI, where they fail."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time

import pytest

from semfi_batch.review.cards import RunReview
from semfi_batch.review.server import ReviewServer
from tests.review_run import make_run
from tests.test_review import give_other_frames

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402


def _tools() -> tuple[str, str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if browser and driver:
        return browser, driver
    if os.environ.get("CI", "").lower() not in ("", "0", "false", "no"):
        pytest.fail("chromium and chromedriver are needed: `make test-deps` (apt-get install chromium chromium-driver)")
    pytest.skip("chromium/chromedriver not installed (`make test-deps`); under CI this test fails instead")


@pytest.fixture
def browser(tmp_path):
    path, driver_path = _tools()
    options = webdriver.ChromeOptions()
    options.binary_location = path
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--window-size=1280,2400", f"--user-data-dir={tmp_path / 'chromium-profile'}"):  # fmt: skip
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # console errors, failed requests
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


class _Served:
    def __init__(self, run_dir):
        self.server = ReviewServer(RunReview(run_dir), port=0, backends=["blend", "flow"])
        self.server.measure_quality()
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def _open(driver, url):
    """The page loaded and every card's generated pictures shown (an accept or reject waits for them)."""
    driver.get(url)
    WebDriverWait(driver, 60).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1")
    WebDriverWait(driver, 60).until(lambda d: _pictures_loaded(d, ".generated img"))


def _pictures_loaded(scope, selector: str) -> bool:
    """Whether every picture `selector` finds in `scope` (the page or a card) has been decoded."""
    return all(
        img.get_attribute("naturalWidth") not in (None, "0") for img in scope.find_elements(By.CSS_SELECTOR, selector)
    )


def _saved(driver, count):
    WebDriverWait(driver, 30).until(
        lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-saved") == str(count)
    )


def _card(driver, pair_id):
    return driver.find_element(By.CSS_SELECTOR, f".card[data-pair='{pair_id}']")


def _stored(run_dir) -> dict:
    return json.loads((run_dir / "decisions.json").read_text())["jobs"]


def test_review_page_in_chromium(tmp_path, browser):
    run_dir = make_run(tmp_path)
    served = _Served(run_dir)
    try:
        _open(browser, served.server.url)
        cards = browser.find_elements(By.CSS_SELECTOR, ".card")
        assert [c.get_attribute("data-pair") for c in cards] == ["a_flash", "b_black", "c_cut"]
        first = _card(browser, "a_flash")
        assert "00:00:00:13 - 00:00:00:15" in first.text and "flash" in first.text and "blend" in first.text
        # Originals beside generated frames, keyframes and the looping preview all decoded in the browser.
        WebDriverWait(browser, 60).until(
            lambda d: all(
                img.get_attribute("naturalWidth") not in (None, "0")
                for img in _card(d, "a_flash").find_elements(By.TAG_NAME, "img")
            )
        )
        assert len(first.find_elements(By.CSS_SELECTOR, ".originals img")) == 3
        assert len(first.find_elements(By.CSS_SELECTOR, ".generated img")) == 3
        assert len(first.find_elements(By.CSS_SELECTOR, ".preview img")) == 1
        assert not _card(browser, "c_cut").find_elements(By.CSS_SELECTOR, ".originals img")  # insert: none

        first.find_element(By.CSS_SELECTOR, "button.accept").click()
        _saved(browser, 1)
        assert _stored(run_dir)["a_flash"]["status"] == "accepted"
        _card(browser, "b_black").find_element(By.CSS_SELECTOR, "button.reject").click()
        _saved(browser, 2)
        assert _stored(run_dir)["b_black"]["status"] == "rejected"
        cut = _card(browser, "c_cut")
        cut.find_element(By.CSS_SELECTOR, "input.seed").send_keys("11")
        Select(cut.find_element(By.CSS_SELECTOR, "select.backend")).select_by_value("flow")
        cut.find_element(By.CSS_SELECTOR, "button.regenerate").click()
        _saved(browser, 3)
        stored = _stored(run_dir)["c_cut"]
        assert (stored["status"], stored["seed"], stored["backend"]) == ("regenerate", 11, "flow")
        rerun = browser.find_element(By.ID, "rerun").text
        assert rerun.startswith("1 job(s) to regenerate: run semfi-batch run ") and str(run_dir) in rerun

        # Keyboard: k k goes back to the first card, j to the second; r rejects it... then a accepts it.
        body = browser.find_element(By.TAG_NAME, "body")
        _card(browser, "c_cut").find_element(By.TAG_NAME, "h3").click()
        body.send_keys("kkj")
        assert "current" in _card(browser, "b_black").get_attribute("class")
        body.send_keys("a")
        _saved(browser, 4)
        assert _stored(run_dir)["b_black"]["status"] == "accepted"
        body.send_keys("k", "r")
        _saved(browser, 5)
        assert _stored(run_dir)["a_flash"]["status"] == "rejected"

        Select(browser.find_element(By.ID, "filter")).select_by_value("accepted")
        assert [c.get_attribute("data-pair") for c in browser.find_elements(By.CSS_SELECTOR, ".card")] == ["b_black"]
        Select(browser.find_element(By.ID, "filter")).select_by_value("all")
        Select(browser.find_element(By.ID, "reason")).select_by_value("cut")
        assert [c.get_attribute("data-pair") for c in browser.find_elements(By.CSS_SELECTOR, ".card")] == ["c_cut"]
        Select(browser.find_element(By.ID, "reason")).select_by_value("")
        Select(browser.find_element(By.ID, "sort")).select_by_value("warp")
        quality = served.server.quality
        worst_first = sorted(quality, key=lambda p: -quality[p][1])
        assert len(quality) == 3 and _shown_order(browser, worst_first) == worst_first
    finally:
        served.stop()

    # A restarted review shows what was decided.
    served = _Served(run_dir)
    try:
        _open(browser, served.server.url)
        badges = {
            c.get_attribute("data-pair"): c.find_element(By.CSS_SELECTOR, "[data-role=decision]").text
            for c in browser.find_elements(By.CSS_SELECTOR, ".card")
        }
        assert badges == {"a_flash": "rejected", "b_black": "accepted", "c_cut": "regenerate"}
    finally:
        served.stop()


def _shown_order(browser, expected: list[str], timeout: float = 15.0) -> list[str]:
    """The cards' order, read again until it is `expected` or `timeout` passes: sorting by warp error fetches
    fresh figures and draws the cards again, so cards found before that can go stale."""
    from selenium.common.exceptions import StaleElementReferenceException

    deadline = time.time() + timeout
    while True:
        try:
            order = [c.get_attribute("data-pair") for c in browser.find_elements(By.CSS_SELECTOR, ".card")]
        except StaleElementReferenceException:
            order = []
        if order == expected or time.time() > deadline:
            return order
        time.sleep(0.2)


def _mean_shown(driver, img) -> float:
    """The mean level of the picture the browser decoded for `img` (what the editor sees)."""
    return driver.execute_script(
        "const img = arguments[0], c = document.createElement('canvas');"
        "c.width = img.naturalWidth; c.height = img.naturalHeight;"
        "const g = c.getContext('2d'); g.drawImage(img, 0, 0);"
        "const d = g.getImageData(0, 0, c.width, c.height).data; let s = 0, n = 0;"
        "for (let i = 0; i < d.length; i += 4) { s += d[i] + d[i + 1] + d[i + 2]; n += 3; } return s / n;",
        img,
    )


def test_a_job_made_again_behind_the_open_page_shows_its_new_frames(tmp_path, browser):
    # The <img> kept its URL when the job's frames changed: Chromium showed the image it had decoded for that
    # URL (the old frames), and an accept then approved frames the editor never saw.
    import numpy as np
    from PIL import Image

    run_dir = make_run(tmp_path)
    served = _Served(run_dir)
    try:
        _open(browser, served.server.url)
        first = lambda d: _card(d, "a_flash").find_element(By.CSS_SELECTOR, ".generated img")  # noqa: E731
        WebDriverWait(browser, 60).until(lambda d: first(d).get_attribute("naturalWidth") not in (None, "0"))
        new_digest = give_other_frames(run_dir, "a_flash")
        with Image.open(run_dir / "jobs" / "a_flash" / "frames" / "000001.png") as im:
            new_mean = float(np.asarray(im.convert("RGB")).mean())
        _card(browser, "a_flash").find_element(By.CSS_SELECTOR, "button.undecide").click()
        _saved(browser, 1)
        assert "ran again" in browser.find_element(By.ID, "status").text
        WebDriverWait(browser, 60).until(lambda d: first(d).get_attribute("naturalWidth") not in (None, "0"))
        assert new_digest in first(browser).get_attribute("src")
        assert abs(_mean_shown(browser, first(browser)) - new_mean) < 2
        _card(browser, "a_flash").find_element(By.CSS_SELECTOR, "button.accept").click()
        _saved(browser, 2)
        assert _stored(run_dir)["a_flash"]["outputs"] == new_digest
    finally:
        served.stop()


def test_an_accept_before_the_new_frames_have_loaded_is_refused(tmp_path, browser):
    # The card took the new outputs' digest as soon as the server answered, before its pictures loaded: an
    # accept pressed in between was saved for frames the editor had not seen.
    run_dir = make_run(tmp_path)
    served = _Served(run_dir)
    review = served.server.review
    real_frame, held = review.generated_frame, threading.Event()

    def held_frame(pair_id, n):
        held.wait(60)
        return real_frame(pair_id, n)

    try:
        _open(browser, served.server.url)
        new_digest = give_other_frames(run_dir, "a_flash")
        review.generated_frame = held_frame  # the new frames' pictures do not arrive yet
        _card(browser, "a_flash").find_element(By.CSS_SELECTOR, "button.undecide").click()
        _saved(browser, 1)
        assert _card(browser, "a_flash").get_attribute("data-outputs") == new_digest
        _card(browser, "a_flash").find_element(By.CSS_SELECTOR, "button.accept").click()
        status = browser.find_element(By.ID, "status")
        WebDriverWait(browser, 10).until(lambda d: status.text.startswith("not saved"))
        assert "a_flash's frames have not loaded yet" in status.text
        assert _stored(run_dir)["a_flash"]["status"] == "undecided"
        held.set()
        WebDriverWait(browser, 60).until(lambda d: _pictures_loaded(_card(d, "a_flash"), ".generated img"))
        _card(browser, "a_flash").find_element(By.CSS_SELECTOR, "button.accept").click()
        _saved(browser, 2)
        assert _stored(run_dir)["a_flash"]["outputs"] == new_digest
    finally:
        held.set()
        served.stop()


def test_decisions_made_in_quick_succession_are_saved_in_the_order_made(tmp_path, browser, monkeypatch):
    # Two clicks on one card went out together: the server saved them in whichever order its threads took
    # the lock, and the page showed whichever answer came last. Here the first (accept) is the slower one.
    import semfi_batch.review.server as server_module

    real_decide = server_module.decide

    def slow_accept(run_dir, pair_ids, status, **kwargs):
        if status == "accepted":
            time.sleep(0.5)
        return real_decide(run_dir, pair_ids, status, **kwargs)

    monkeypatch.setattr(server_module, "decide", slow_accept)
    run_dir = make_run(tmp_path)
    served = _Served(run_dir)
    try:
        _open(browser, served.server.url)
        card = _card(browser, "b_black")
        accept, reject = (card.find_element(By.CSS_SELECTOR, f"button.{c}") for c in ("accept", "reject"))
        browser.execute_script("arguments[0].click(); arguments[1].click();", accept, reject)
        _saved(browser, 2)
        assert _stored(run_dir)["b_black"]["status"] == "rejected"
        assert _card(browser, "b_black").find_element(By.CSS_SELECTOR, "[data-role=decision]").text == "rejected"
    finally:
        served.stop()


def test_keys_act_on_the_card_shown_after_a_filter_hides_the_current_one(tmp_path, browser):
    # Showing "undecided", `a` took the current card out of the list, yet the next key acted on it (hidden):
    # `r` turned the accept just made into a reject, and `g` threw a TypeError and did nothing.
    run_dir = make_run(tmp_path)
    served = _Served(run_dir)
    try:
        _open(browser, served.server.url)
        Select(browser.find_element(By.ID, "filter")).select_by_value("undecided")
        _card(browser, "a_flash").find_element(By.TAG_NAME, "h3").click()
        body = browser.find_element(By.TAG_NAME, "body")
        for count, key in enumerate("arg", start=1):
            body.send_keys(key)
            _saved(browser, count)
        assert {p: d["status"] for p, d in _stored(run_dir).items()} == {
            "a_flash": "accepted", "b_black": "rejected", "c_cut": "regenerate"}  # fmt: skip
        assert browser.find_element(By.ID, "status").text == ""
    finally:
        served.stop()


def test_a_typed_seed_is_saved_exactly_or_refused_with_a_message(tmp_path, browser):
    # The seed went as a JavaScript number (19 digits rounded to another seed), "1.5" was saved as 1, and a
    # seed typed into one card was wiped when another card was decided (every decision redraws the cards).
    run_dir = make_run(tmp_path)
    served = _Served(run_dir)
    seed = "6797872655438013659"
    try:
        _open(browser, served.server.url)
        _card(browser, "c_cut").find_element(By.CSS_SELECTOR, "input.seed").send_keys(seed)
        Select(_card(browser, "c_cut").find_element(By.CSS_SELECTOR, "select.backend")).select_by_value("flow")
        _card(browser, "a_flash").find_element(By.CSS_SELECTOR, "button.accept").click()
        _saved(browser, 1)
        _card(browser, "c_cut").find_element(By.CSS_SELECTOR, "button.regenerate").click()
        _saved(browser, 2)
        stored = json.loads((run_dir / "decisions.json").read_text(), parse_int=str)["jobs"]["c_cut"]
        assert (stored["seed"], stored["backend"]) == (seed, "flow")
        assert f"seed {seed}, backend flow" in _card(browser, "c_cut").text
        _card(browser, "b_black").find_element(By.CSS_SELECTOR, "input.seed").send_keys("1.5")
        _card(browser, "b_black").find_element(By.CSS_SELECTOR, "button.regenerate").click()
        WebDriverWait(browser, 10).until(lambda d: "whole number" in d.find_element(By.ID, "status").text)
        assert "b_black" not in _stored(run_dir)
    finally:
        served.stop()


def test_a_job_without_key_images_and_the_keys_after_choosing_a_filter(tmp_path, browser):
    # A job that had not run showed broken key pictures (404s), every load asked for /favicon.ico (404), and
    # after choosing a filter with the mouse the keys went to the <select> instead of the cards.
    from selenium.webdriver.common.action_chains import ActionChains

    run_dir = make_run(tmp_path)
    shutil.rmtree(run_dir / "jobs" / "b_black")  # not run
    served = _Served(run_dir)
    try:
        _open(browser, served.server.url)
        WebDriverWait(browser, 60).until(
            lambda d: all(img.get_attribute("complete") == "true" for img in d.find_elements(By.TAG_NAME, "img"))
        )
        shown = [img.get_attribute("src") for img in _card(browser, "b_black").find_elements(By.TAG_NAME, "img")]
        assert shown and all("/original/" in src for src in shown)  # the source's frames it would replace
        assert _card(browser, "b_black").text.count("no key image") == 2
        time.sleep(0.5)  # the favicon request, if any, comes after the load
        errors = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors
        select = browser.find_element(By.ID, "filter")
        select.click()
        Select(select).select_by_value("undecided")
        ActionChains(browser).send_keys("a").perform()
        _saved(browser, 1)
        assert _stored(run_dir)["a_flash"]["status"] == "accepted"
    finally:
        served.stop()


def test_a_key_decides_only_on_a_card_in_view(tmp_path, browser):
    # Scrolled away (no click), `a` accepted the highlighted card, off screen, while nothing on screen changed.
    run_dir = make_run(tmp_path)
    served = _Served(run_dir)
    try:
        _open(browser, served.server.url)
        browser.set_window_size(1280, 420)  # a card or so in view
        body = browser.find_element(By.TAG_NAME, "body")
        assert browser.find_element(By.CSS_SELECTOR, ".card.current").get_attribute("data-pair") == "a_flash"
        in_view = "const r = arguments[0].getBoundingClientRect(); return r.bottom > 0 && r.top < innerHeight;"
        browser.execute_script("arguments[0].scrollIntoView({block: 'end'})", _card(browser, "c_cut"))
        WebDriverWait(browser, 10).until(lambda d: not d.execute_script(in_view, _card(d, "a_flash")))
        # The highlight follows the scroll to a card in view; the key acts on that one.
        WebDriverWait(browser, 10).until(
            lambda d: d.find_element(By.CSS_SELECTOR, ".card.current").get_attribute("data-pair") != "a_flash"
        )
        current = browser.find_element(By.CSS_SELECTOR, ".card.current")
        assert browser.execute_script(in_view, current)
        pair = current.get_attribute("data-pair")
        body.send_keys("a")
        _saved(browser, 1)
        assert _stored(run_dir)[pair]["status"] == "accepted" and "a_flash" not in _stored(run_dir)
        # A key pressed while the highlighted card is off screen (before the highlight followed): refused, and
        # the card is brought into view.
        browser.execute_script("state.current = 'a_flash'; markCurrent(false);")
        body.send_keys("r")
        status = browser.find_element(By.ID, "status")
        WebDriverWait(browser, 10).until(lambda d: status.text.startswith("not saved"))
        assert "a_flash was not in view" in status.text and "a_flash" not in _stored(run_dir)
        assert browser.execute_script(in_view, _card(browser, "a_flash"))
    finally:
        served.stop()
