"""Renders the phone's PWA icons (PNG, 192 and 512 px) from static/phone/icon.svg with headless Chromium.

Run once after changing the SVG: ``.venv/bin/python frontend/make_icons.py``; the PNGs are committed.
"""

from pathlib import Path

from playwright.sync_api import sync_playwright

STATIC = Path(__file__).resolve().parents[1] / "ringwell" / "web" / "static" / "phone"

with sync_playwright() as playwright:
    browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
    svg = (STATIC / "icon.svg").read_text()
    for size in (192, 512):
        page = browser.new_page(viewport={"width": size, "height": size})
        page.set_content(f"<style>html,body{{margin:0;background:transparent}}svg{{display:block;width:{size}px;"
                         f"height:{size}px}}</style>{svg}")
        page.screenshot(path=str(STATIC / f"icon-{size}.png"), omit_background=True)
        page.close()
    browser.close()
