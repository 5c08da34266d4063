"""Headless Chromium for the tests that look at a page as a person's browser does.

    browser = chromium_driver()      # selenium WebDriver; quit() it in a finally
    browser.get(url)
    errors = console_problems(browser)

The browser's console is kept (`goog:loggingPrefs`), so a test can hold a page to loading with no
errors or warnings. Never a skip: without Chromium the test fails with the packages to install.
"""

from __future__ import annotations

from typing import Any

import pytest


def chromium_driver():
    """Headless Chromium through chromedriver (Debian packages chromium and chromium-driver); never a skip."""
    import shutil

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if binary is None or driver is None:
        pytest.fail("headless Chromium needed: apt-get install chromium chromium-driver", pytrace=False)
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--disable-background-networking"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(driver))


def console_problems(browser: Any) -> list[dict[str, Any]]:
    """What the page logged at warning or worse since the last call (the log is read once)."""
    return [entry for entry in browser.get_log("browser") if entry["level"] in ("SEVERE", "WARNING")]
