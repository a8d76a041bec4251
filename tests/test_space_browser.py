"""The grounded-chat Space in a real browser: Debian's chromium driven by Playwright.

A tiny SVIT-LLaVA is taught two grounded answers of the bundled sample, a chat question and a referring question
(SVIT's referring template around a phrase, as the app asks it); `svit space` writes its Space folder, whose
`app.py` is served in a process where svit cannot be imported (`python -S`, as on the Hub). The browser uploads
the image, asks the chat question, then switches to the referring mode, types the phrase and submits it; for
each answer the test checks the highlighted phrase (text and colour) and the drawn image (the served PNG equals
the app's drawing of the raw answer and holds the phrase's box colour), and for the referring one the request
the page sent (mode and phrase). The screenshot, of the referring answer, is kept in
out/test-artefacts/space_browser.png.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from svit_dataset import bundled
from svit_model.building import save_checkpoint
from svit_model.draw import PALETTE
from svit_model.space import write_space
from svit_model.space.app import REFERRING, render_answer
from svit_model.space.folder import REFERRING_TEMPLATE
from svit_model.teaching import TAUGHT_QUESTION, bundled_referring_rows, pick_grounded_turn, teach
from svit_model.tiny import build_tiny_svit_llava, corpus_from_rows

ARTEFACT = Path(__file__).resolve().parents[1] / "out" / "test-artefacts" / "space_browser.png"
# Root, no network, no GPU: what works here and in CI. Playwright's launch adds a fresh profile folder.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


REFERRING_PHRASE = "the red chair"  # the bundled sample asks "Where is the red chair?" about the same image
REFERRING_LABEL = "Referring: where is ...?"


@pytest.fixture(scope="module", autouse=True)
def gradio_temp_dir(tmp_path_factory) -> Path:
    """Anything gradio writes in this process goes to a folder pytest cleans up, not /tmp/gradio."""
    folder = tmp_path_factory.mktemp("gradio")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GRADIO_TEMP_DIR", str(folder))
        yield folder


def _chromium() -> str:
    """Debian's chromium; missing, the test fails (never skips): CI installs it with `make setup`."""
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        pytest.fail("chromium is not installed: run `make setup` (it installs Debian's chromium, as CI does)")
    return path


def _conversation(image: Image.Image, question: str, answer: str) -> list[dict]:
    return [
        {"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": question}]},
        {"role": "assistant", "content": [{"type": "text", "text": answer}]},
    ]


@pytest.fixture(scope="module")
def taught(tmp_path_factory) -> dict:
    """A Space folder for a tiny SVIT-LLaVA taught to answer TAUGHT_QUESTION and the referring question about
    REFERRING_PHRASE (the app's template around it) on their bundled image, each with its grounded answer."""
    rows = bundled_referring_rows()
    row, reference = pick_grounded_turn(rows)
    _, referring_reference = pick_grounded_turn(rows, f"Where is {REFERRING_PHRASE}?")
    image_path = bundled.IMAGES_DIR / row["image_path"]
    image = Image.open(image_path).convert("RGB")
    model, processor = build_tiny_svit_llava(corpus_from_rows(rows), seed=0)
    chat = _conversation(image, TAUGHT_QUESTION, reference)
    referring = _conversation(image, REFERRING_TEMPLATE.format(phrase=REFERRING_PHRASE), referring_reference)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model trains fastest on one thread (far slower when threads compete)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            for _ in range(20):  # in turns, so that neither answer is forgotten: 160 steps in all
                teach(model, processor, chat, steps=4)
                teach(model, processor, referring, steps=4)
    finally:
        torch.set_num_threads(threads)
    root = tmp_path_factory.mktemp("browser")
    checkpoint = save_checkpoint(model, processor, root / "taught")
    return {
        "space": write_space(checkpoint, root / "space"),
        "image": image_path,
        "phrase": processor.post_process_generation(reference, padded=False)[1][0][0],
        "referring_phrase": processor.post_process_generation(referring_reference, padded=False)[1][0][0],
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def _served(folder: Path, log: Path, timeout: float = 90):
    """`python -S app.py` in the Space folder on a free local port; yields its URL once it answers."""
    port = _free_port()
    site_packages = next(p for p in sys.path if p.endswith("site-packages"))
    env = {
        **os.environ,
        "PYTHONPATH": site_packages,  # `-S` skips site: svit's editable-install hook never runs
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_ANALYTICS_ENABLED": "False",
        "GRADIO_TEMP_DIR": str(log.parent / "gradio"),
        "HF_MODULES_CACHE": str(log.parent / "modules"),
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",  # the tiny model answers fastest on one thread
        "NO_PROXY": "127.0.0.1,localhost",  # gradio checks its own URL; never through a proxy
        "no_proxy": "127.0.0.1,localhost",
    }
    url = f"http://127.0.0.1:{port}/"
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-S", "app.py"], cwd=folder, env=env, stdout=out, stderr=out
        )
    try:
        deadline = time.monotonic() + timeout
        while True:
            if server.poll() is not None:
                pytest.fail(f"the Space's app.py exited with {server.returncode}:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(url, timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"the Space's app.py did not answer on {url} in {timeout} s:\n{log.read_text()[-3000:]}"
                    )
                time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _rgb(colour: str) -> tuple[int, int, int]:
    return tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))


def _answer(page) -> dict:
    """What the page shows of the latest answer: raw text, highlighted phrases, the first one's background and
    the drawn image as the server sent it."""
    highlighted = page.locator("#svit-answer .highlighted")
    drawn_url = page.locator("#svit-boxes img").get_attribute("src")
    return {
        "raw": page.locator("#svit-raw textarea").input_value(),
        "phrases": [text.strip() for text in highlighted.all_inner_texts()],
        "background": highlighted.first.evaluate("span => getComputedStyle(span).backgroundColor"),
        "drawn": Image.open(io.BytesIO(page.request.get(drawn_url).body())).convert("RGB"),
    }


@pytest.mark.slow
def test_space_answers_with_highlighted_phrase_and_drawn_boxes(taught, tmp_path):
    chromium = _chromium()
    from playwright.sync_api import expect, sync_playwright

    with _served(taught["space"], tmp_path / "app.log") as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            try:
                page.goto(url)
                page.locator("#svit-image input[type=file]").set_input_files(str(taught["image"]))
                expect(page.locator("#svit-image img")).to_be_visible()
                # Chat mode (the default): the question as typed, asked with the button.
                page.locator("#svit-question textarea").fill(TAUGHT_QUESTION)
                page.locator("#svit-ask").click()
                raw_box = page.locator("#svit-raw textarea")
                expect(raw_box).not_to_have_value("", timeout=60_000)
                expect(page.locator("#svit-boxes img")).to_be_visible()
                chat = _answer(page)
                # Referring mode: only the phrase is typed, submitted with Enter; the app asks its question.
                page.locator("#svit-mode").get_by_label(REFERRING_LABEL).check()
                question = page.locator("#svit-question textarea")
                question.click()  # the pointer leaves the radio (gradio blanks a hovered checked radio)
                question.fill(REFERRING_PHRASE)
                with page.expect_request(lambda r: r.method == "POST" and "/queue/join" in r.url) as sent:
                    question.press("Enter")
                expect(raw_box).not_to_have_value(chat["raw"], timeout=60_000)
                expect(page.locator("#svit-answer .highlighted").first).to_have_text(
                    taught["referring_phrase"]
                )
                referring = _answer(page)
                request = sent.value.post_data_json
            finally:
                ARTEFACT.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(ARTEFACT), full_page=True)
        finally:
            browser.close()

    # The page sent the image, the referring mode and the phrase as typed; the app made the question of it.
    assert request["data"][1:] == [REFERRING, REFERRING_PHRASE], request
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(taught["space"] / "model")
    image = Image.open(taught["image"]).convert("RGB")
    for answer, phrase in ((chat, taught["phrase"]), (referring, taught["referring_phrase"])):
        # The taught phrase, highlighted in the first colour of the one palette.
        assert answer["phrases"] == [phrase], answer["raw"]
        assert answer["background"].startswith("rgba({}, {}, {}".format(*_rgb(PALETTE[0]))), answer
        # The drawn image is the app's drawing of the raw answer, with the phrase's box in that colour.
        expected = render_answer(answer["raw"], image, processor).drawn
        assert answer["drawn"].size == expected.size
        assert np.array_equal(np.asarray(answer["drawn"]), np.asarray(expected))
        box_pixels = (np.asarray(answer["drawn"]) == _rgb(PALETTE[0])).all(axis=-1).sum()
        assert box_pixels > 200, box_pixels
    # Two different boxes: the referring answer is not the chat answer again.
    assert not np.array_equal(np.asarray(chat["drawn"]), np.asarray(referring["drawn"]))
