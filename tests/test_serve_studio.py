"""The web studio (`genlab serve` at /) in headless Chromium: text streamed from a tiny gpt run, two images from a
tiny vae run, a generated PNG verified through the file input, a model card rendered; every control labelled and
no error in the page's console. Debian's Chromium drives it (`make test` installs it when missing); without it, or
without Playwright, the module is skipped."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
from pathlib import Path

import httpx
import pytest

import genlab
from conftest import TINY, torch_threads
from genlab import registry
from serve_helpers import server

CHROMIUM = "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else shutil.which("chromium")
if not CHROMIUM:
    pytest.skip("Chromium is not installed (apt-get install chromium; make test installs it when it can)",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright cannot be imported (pip install playwright)",
                             exc_type=ImportError)
expect = sync_api.expect

PROMPT = "HAMLET:\n"


@pytest.fixture(scope="module")
def runs(tmp_path_factory, corpus_file) -> Path:
    """A runs folder with a tiny text run and a tiny image run (a few seconds of training together)."""
    folder = tmp_path_factory.mktemp("studio-runs")
    with torch_threads(1):
        genlab.train("gpt", str(corpus_file), out=folder / "text", overrides=TINY + ["train.max_steps=30"])
        vae = registry.get_family("vae")
        digits = registry.get_modality(vae.modality).example(folder)  # the smallest image dataset
        # 32x32 pixels: images under 24x24 carry no watermark, and the test checks that the verdict reports one
        genlab.train("vae", digits, out=folder / "image",
                     overrides=[*vae.example["set"], "data.size=32", "train.max_steps=20", "train.eval_every=10",
                                "train.eval_batches=2"])
    return folder


@pytest.fixture(scope="module")
def url(runs) -> str:
    with server(runs) as base:
        yield base


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            chromium.close()


def unlabelled(page) -> list[str]:
    """Every form control of the page without a name: shown ones by their accessible name as the browser computes
    it, hidden ones (other views) by their <label> or aria-label."""
    missing = []
    controls = page.locator("input:not([type=hidden]), select, textarea")
    for i in range(controls.count()):
        control = controls.nth(i)
        if control.is_visible():
            try:
                expect(control).to_have_accessible_name(re.compile(r"\w"), timeout=1000)
                continue
            except AssertionError:
                pass
        elif control.evaluate("e => [...e.labels].some(l => l.textContent.trim()) || !!e.getAttribute('aria-label')"):
            continue
        missing.append(control.evaluate("e => e.outerHTML"))
    return missing


def test_studio_streams_text_makes_images_verifies_a_file_and_renders_a_card(url, runs, browser, tmp_path):
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.set_default_timeout(30_000)
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.goto(url + "/")
    expect(page).to_have_title(re.compile("genlab studio"))
    for landmark in ("banner", "navigation", "main"):
        expect(page.get_by_role(landmark)).to_be_visible()
    expect(page.get_by_role("link", name="Generate")).to_have_attribute("aria-current", "page")

    # text: streamed into the page, the same text as a whole completion with that seed, then its provenance
    run_id = json.loads((runs / "text" / "release.json").read_text())["run_id"]
    page.get_by_label("Model").select_option("text")
    page.get_by_label("Prompt").fill(PROMPT)
    page.get_by_label("Max tokens").fill("40")
    page.get_by_label("Temperature").fill("0.9")
    page.get_by_label("Seed").fill("7")
    page.get_by_role("button", name="Generate").click()
    expect(page.get_by_label("Provenance")).to_contain_text(run_id)
    output = page.locator("#stream-output")
    expect(output).to_have_attribute("aria-busy", "false")
    whole = httpx.post(url + "/v1/completions", json={"model": "text", "prompt": PROMPT, "max_tokens": 40, "seed": 7,
                                                      "temperature": 0.9}, timeout=60).json()
    assert whole["choices"][0]["text"], whole
    assert output.text_content() == PROMPT + whole["choices"][0]["text"]
    expect(page.get_by_role("status")).to_contain_text("Generated")
    assert unlabelled(page) == []

    # images: a grid of two, each with a download link
    page.get_by_label("Model").select_option("image")
    page.get_by_label("Count").fill("2")
    page.get_by_label("Seed").fill("1")
    page.get_by_role("button", name="Generate").click()
    images = page.get_by_role("img", name=re.compile("^Generated image"))
    expect(images).to_have_count(2)
    page.wait_for_function("() => [...document.querySelectorAll('#results img')].every(i => i.naturalWidth === 32)")
    for i in range(2):
        expect(page.get_by_role("link", name=f"sample-000{i}.png", exact=True)).to_have_attribute(
            "download", f"sample-000{i}.png")
    expect(page.get_by_label("Provenance")).to_contain_text("genlab-image-v1")
    assert not page.get_by_role("alert").text_content()

    # verify: a generated PNG through the labelled file input
    made = httpx.post(url + "/v1/images/generations", json={"model": "image", "n": 1, "seed": 3}, timeout=60)
    assert made.status_code == 200, made.text
    png = tmp_path / "made.png"
    png.write_bytes(base64.b64decode(made.json()["data"][0]["b64_json"]))
    page.get_by_role("link", name="Verify").click()
    expect(page.get_by_role("heading", name="Verify a file")).to_be_focused()
    page.get_by_label("Files to verify").set_input_files(png)
    verdict = page.get_by_role("article").filter(has_text="made.png")
    expect(verdict.locator(".badge")).to_have_text("trusted")
    expect(verdict).to_contain_text("vae on digits")
    expect(verdict.get_by_role("definition").last).to_contain_text("found (genlab-image-v1), matching the manifest")
    expect(page.get_by_role("status")).to_have_text("The file is trusted.")
    # ... and dropped on the drop zone
    dropped = page.evaluate_handle("""b64 => {
        const data = new DataTransfer();
        const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
        data.items.add(new File([bytes], "dropped.png", {type: "image/png"}));
        return data;
    }""", base64.b64encode(png.read_bytes()).decode())
    page.locator("#verify-form").dispatch_event("drop", {"dataTransfer": dropped})
    expect(page.get_by_role("article").filter(has_text="dropped.png").locator(".badge")).to_have_text("trusted")

    # jobs, reached with the keyboard: the page and its form are there (training one is test_serve_jobs.py's work)
    page.get_by_role("link", name="Jobs").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Training jobs")).to_be_focused()
    expect(page.get_by_text("No jobs yet")).to_be_visible()
    expect(page.get_by_label("Family")).to_be_visible()
    expect(page.get_by_label("Dataset")).to_be_visible()

    # card: the text run's Markdown card rendered (headings, tables) and its loss curve
    page.get_by_role("link", name="Card").click()
    page.get_by_label("Run", exact=True).select_option("text")
    expect(page.get_by_role("heading", name="Training data")).to_be_visible()
    expect(page.get_by_role("heading", name="Responsible release")).to_be_visible()
    expect(page.get_by_role("cell", name=run_id)).to_be_visible()
    expect(page.get_by_role("img", name=re.compile("loss of text"))).to_be_visible()
    # the renderer makes text of any HTML in a card, and keeps only http(s), mailto and #anchor links
    rendered = page.evaluate("""async () => {
        const {renderMarkdown} = await import("/markdown.js");
        const box = document.createElement("div");
        renderMarkdown("# T <b>x</b>\\n\\n<script>alert(1)</script> [a](javascript:alert(1)) "
                       + "[b](https://example.org) <img src=x onerror=alert(1)> **bold** _it_ `<i>code</i>`"
                       + "\\n\\n| k | v |\\n|---|---|\\n| a | b |", box);
        return {html: box.innerHTML, elements: [...box.querySelectorAll("*")].map(e => e.tagName.toLowerCase()),
                links: [...box.querySelectorAll("a")].map(a => a.getAttribute("href"))};
    }""")
    assert set(rendered["elements"]) <= {"h2", "p", "a", "strong", "em", "code", "div", "table", "thead", "tbody", "tr",
                                         "th", "td", "span"}, rendered
    assert {"h2", "strong", "em", "code", "table"} <= set(rendered["elements"]), rendered
    assert rendered["links"] == ["https://example.org"], rendered
    assert "&lt;script&gt;" in rendered["html"] and "&lt;i&gt;code&lt;/i&gt;" in rendered["html"]

    assert unlabelled(page) == []
    assert problems == []
