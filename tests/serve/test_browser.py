"""The page in a real browser: headless Chromium (Debian's ``chromium`` and
``chromium-driver``, driven by Selenium) against a running server. It picks a user and
sees ten titles per model, then rates three movies as a new user and sees the list
change. Screenshots go to ``$MOVIEREC_SCREENSHOTS`` (default: the test's folder)."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

from movierec.data.processed import load_processed
from movierec.serve.api import Served, create_app

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as ready  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402
from served_project import trained_project  # noqa: E402  (tests/serve)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER),
    reason="no chromium / chromedriver here: apt-get install chromium chromium-driver",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tiny_project):
    import uvicorn

    app = create_app(Served.load(trained_project()))
    port = _free_port()
    running = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not running.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    running.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def browser(tmp_path):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,1600"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=DRIVER), options=options)
    yield driver
    driver.quit()


def _shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("MOVIEREC_SCREENSHOTS", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _column_titles(driver) -> list[list[str]]:
    return [
        [li.find_element(By.CSS_SELECTOR, ".title").text for li in col.find_elements(By.CSS_SELECTOR, "li")]
        for col in driver.find_elements(By.CSS_SELECTOR, "#columns .column")
    ]


def _get_json(server: str, path: str) -> dict:
    import json
    import urllib.request

    with urllib.request.urlopen(server + path, timeout=10) as answer:
        return json.loads(answer.read())


def _in_view(driver, element_id: str) -> bool:
    """Whether the element's top lies inside the window (not below the cards)."""
    return driver.execute_script(
        "const r = document.getElementById(arguments[0]).getBoundingClientRect();"
        "return r.top >= 0 && r.top < window.innerHeight && r.height > 0;",
        element_id,
    )


def test_the_favicon_is_served(server):
    import urllib.request

    with urllib.request.urlopen(server + "/favicon.ico", timeout=10) as answer:
        assert answer.status == 200 and answer.headers["content-type"].startswith("image/svg")


def load_history_titles(user_id: str) -> set[str]:
    data = load_processed()
    user = int(data.users.filter(data.users["user_id"] == int(user_id))["user"].item())
    items = data.ratings.filter(data.ratings["user"] == user)["item"].to_list()
    return {data.items["title"][int(i)] for i in items}


def test_a_person_compares_models_and_rates_as_a_new_user(server, browser, tmp_path):
    shots = _shots(tmp_path)
    wait = WebDriverWait(browser, 20)
    browser.get(server)
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#model-picks input")) == 3)
    user_id = str(load_processed().users["user_id"][7])
    browser.find_element(By.ID, "user-id").send_keys(user_id)
    browser.find_element(By.CSS_SELECTOR, "#user-form button[type=submit]").click()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#columns .column")) == 3)
    wait.until(lambda d: all(len(c) == 10 for c in _column_titles(d)[1:]))
    history, *models = _column_titles(browser)
    assert history and all(len(titles) == 10 and all(titles) for titles in models)
    assert not set(history) & set(models[0]), "a recommendation is never a movie the user rated"
    assert f"user={user_id}" in browser.current_url and "models=" in browser.current_url
    picked = [b.get_attribute("value") for b in browser.find_elements(By.CSS_SELECTOR, "#model-picks input:checked")]
    selected = _get_json(server, "/api/models")["selected"]
    assert picked == [selected["topn"], selected["rating"]], "validation's picks are ticked"
    board = browser.find_element(By.ID, "leaderboard").text
    assert "bias (floor)" in board and browser.find_element(By.LINK_TEXT, "API documentation")
    browser.save_screenshot(str(shots / "user.png"))

    column = browser.find_elements(By.CSS_SELECTOR, "#columns .column")[1]
    column.find_elements(By.CSS_SELECTOR, "li .title")[0].click()  # why this one?
    wait.until(ready.visibility_of_element_located((By.ID, "why-list")))
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#why-list li")) >= 1)
    because = [li.find_element(By.CSS_SELECTOR, ".title").text for li in browser.find_elements(By.CSS_SELECTOR, "#why-list li")]
    assert set(because) <= set(load_history_titles(user_id)), "the reasons are the user's own ratings"
    assert len(browser.find_elements(By.CSS_SELECTOR, "#similar-list li")) == 10
    wait.until(lambda d: _in_view(d, "why"))
    browser.save_screenshot(str(shots / "why.png"))

    browser.set_window_size(390, 844)  # a phone: the explanation still opens in view
    browser.execute_script("window.scrollTo(0, 0)")
    column = browser.find_elements(By.CSS_SELECTOR, "#columns .column")[1]
    column.find_elements(By.CSS_SELECTOR, "li .title")[1].click()
    wait.until(lambda d: _in_view(d, "similar-title"))
    browser.save_screenshot(str(shots / "why-phone.png"))
    browser.set_window_size(1280, 1600)

    browser.get(f"{server}/?user={user_id}&models={selected['topn']}")  # a shared link
    wait.until(lambda d: len(_column_titles(d)) == 2 and len(_column_titles(d)[1]) == 10)
    assert _column_titles(browser)[1] == models[0]

    browser.find_element(By.ID, "new-user").click()
    wait.until(ready.visibility_of_element_located((By.ID, "search-q")))
    browser.find_element(By.ID, "search-q").send_keys("Movie 1")
    browser.find_element(By.CSS_SELECTOR, "#search-form button").click()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#search-results li")) >= 3)
    lists = []
    for pick, stars in ((0, "5★"), (1, "5★"), (2, "1★")):
        row = browser.find_elements(By.CSS_SELECTOR, "#search-results li")[pick]
        row.find_element(By.XPATH, f".//button[text()='{stars}']").click()
        wait.until(lambda d, n=pick + 1: len(d.find_elements(By.CSS_SELECTOR, "#my-ratings li")) == n)
        wait.until(lambda d, n=pick + 1: f"{n} ratings" in d.find_element(By.ID, "columns").text)
        lists.append(_column_titles(browser)[0])
    assert all(len(titles) == 10 for titles in lists)
    assert lists[0] != lists[2], "three ratings give another list than one"
    browser.save_screenshot(str(shots / "new-user.png"))
    assert browser.find_element(By.ID, "message").text == ""
