"""The recorder page in headless Chromium: a recording played in as the microphone, real server.

Chromium's fake capture device plays a WAV file as the microphone; the page's AudioWorklet
resamples it to 16 kHz and streams it to a real daphne serving the real application.
"""
import os
import re
import shutil
import time
from pathlib import Path

import jiwer
import pytest

from .conftest import DATA, normalise_en
from .servers import PASSWORD, POSTGRES, REDIS, ROOT, ServerProcess, postgres_database, reachable

ARTIFACTS = ROOT / "tests" / "artifacts"  # screenshots to look at; not in git
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

if not CHROMIUM and os.environ.get("STT_REQUIRE_BROWSER") != "1":
    pytest.skip("chromium is not installed (make test installs it)", allow_module_level=True)

pytestmark = [pytest.mark.model, pytest.mark.browser]


@pytest.fixture(scope="module")
def daphne(tmp_path_factory):
    server = ServerProcess(tmp_path_factory.mktemp("server"))
    server.create_user("browser")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def server(daphne):
    return daphne.url


@pytest.fixture
def browser_with_mic():
    from playwright.sync_api import sync_playwright

    launched = []

    def launch(wav: Path | None, microphone: str = "allowed", extra: tuple[str, ...] = ()):
        args = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", *extra]
        if microphone == "allowed":
            args += ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                     f"--use-file-for-fake-audio-capture={wav}%noloop"]
        elif microphone == "denied":
            args += ["--use-fake-device-for-media-stream", "--deny-permission-prompts"]
        # "missing": headless Chromium without a fake device has no microphone at all
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=args)
        launched.append(browser)
        return browser.new_page(viewport={"width": 390, "height": 800})  # a phone-sized screen

    with sync_playwright() as pw:
        yield launch
        for browser in launched:
            browser.close()


def log_in(page, server):
    page.goto(server + "/")
    assert "/accounts/login/" in page.url  # login required
    page.fill("#id_username", "browser")
    page.fill("#id_password", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_selector("#start")


def test_speaking_into_the_page_shows_interims_then_stored_finals(server, browser_with_mic):
    page = browser_with_mic(DATA / "en/jfk.wav")
    log_in(page, server)
    page.select_option("#lang", "en-US")
    # Record every interim the page shows, to check grey text appeared while speaking.
    page.evaluate("""() => { window.interims = [];
        new MutationObserver(() => { const t = document.getElementById('interim').textContent;
            if (t) window.interims.push(t); }).observe(document.getElementById('interim'),
            {childList: true, characterData: true, subtree: true}); }""")
    page.click("#start")
    page.wait_for_function("document.getElementById('state').textContent === 'listening'", timeout=30_000)
    page.wait_for_function("document.querySelectorAll('#finals li').length >= 2", timeout=60_000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "recorder-live.png"))
    time.sleep(13 - 2)  # the recording is 11 s long; let it play out
    page.click("#stop")
    page.wait_for_function("document.getElementById('state').textContent === 'ended'", timeout=60_000)
    page.screenshot(path=str(ARTIFACTS / "recorder-ended.png"))

    finals = page.eval_on_selector_all("#finals li .text", "els => els.map(e => e.textContent)")
    hypothesis = " ".join(finals)
    wer = jiwer.wer(normalise_en((DATA / "en/jfk.txt").read_text()), normalise_en(hypothesis))
    assert wer <= 0.15, (wer, finals)
    assert page.evaluate("window.interims.length") >= 1
    assert page.eval_on_selector("#interim", "e => e.textContent") == ""

    page.goto(server + page.get_attribute("#session-link", "href"))  # the stored session shows the same finals
    page.wait_for_selector(".segments")
    stored = page.eval_on_selector_all(".segments li .text", "els => els.map(e => e.textContent)")
    assert stored == finals
    # Clicking the second phrase plays the kept audio from its start.
    second = page.locator("#segments li").nth(1)
    start_s = int(second.get_attribute("data-start")) / 1000
    second.locator(".text").click()  # (the phrase itself: beside it are the speaker and "edit")
    page.wait_for_function("!document.getElementById('player').paused", timeout=10_000)
    page.wait_for_function(f"document.getElementById('player').currentTime > {start_s}", timeout=10_000)
    page.screenshot(path=str(ARTIFACTS / "session-detail.png"))
    with page.expect_download() as download:
        page.click("a[href$='export.srt']")
    srt = Path(download.value.path()).read_text(encoding="utf-8")
    cues = re.findall(r"^(\d+)\n(\d\d):(\d\d):(\d\d),(\d{3}) --> (\d\d):(\d\d):(\d\d),(\d{3})\n(.+)$", srt, re.M)
    assert [c[-1] for c in cues] == finals
    times = [(int(c[1]) * 3600 + int(c[2]) * 60 + int(c[3]) + int(c[4]) / 1000,
              int(c[5]) * 3600 + int(c[6]) * 60 + int(c[7]) + int(c[8]) / 1000) for c in cues]
    assert all(a < b for a, b in times) and all(times[i][1] <= times[i + 1][0] for i in range(len(times) - 1))
    assert times[-1][1] <= 14  # the 11 s recording, plus the moments before it started playing
    page.goto(server + "/sessions/")
    assert finals[0][:20] in page.content()


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    """Production's shape: two daphne processes sharing the machine's PostgreSQL and Redis."""
    if not (reachable(REDIS) and reachable(POSTGRES)):
        if os.environ.get("STT_REQUIRE_SERVICES") == "1":
            raise RuntimeError("Redis and PostgreSQL are needed by this test")
        pytest.skip("Redis and PostgreSQL are not running on this machine")
    with postgres_database() as database:
        env = {"DATABASE_URL": database, "REDIS_URL": "redis://127.0.0.1:6379/0"}
        a = ServerProcess(tmp_path_factory.mktemp("a"), env=env)
        b = ServerProcess(tmp_path_factory.mktemp("b"), env=env, migrate=False)
        a.create_user("browser")
        a.start()
        b.start()
        yield a, b
        a.stop()
        b.stop()


def speech_pause_speech(path: Path) -> Path:
    """jfk, then 15 s of a quiet room (what the microphone sends while nobody speaks), then beckett."""
    import wave

    import numpy as np

    from .conftest import read_wav

    room = np.random.default_rng(0).normal(0, 30, 15 * 16000).astype("<i2").tobytes()
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
        w.writeframes(read_wav(DATA / "en/jfk.wav") + room + read_wav(DATA / "en/beckett.wav"))
    return path


def test_a_share_link_shows_live_captions_on_another_process_through_a_pause(two_processes, browser_with_mic,
                                                                             tmp_path):
    a, b = two_processes
    speaker = browser_with_mic(speech_pause_speech(tmp_path / "talk.wav"))
    log_in(speaker, a.url)
    speaker.select_option("#lang", "en-US")
    speaker.click("#start")
    speaker.wait_for_function("document.getElementById('state').textContent === 'listening'", timeout=30_000)
    session_path = speaker.get_attribute("#session-link", "href")

    owner = browser_with_mic(None, microphone="missing")  # the same user, in another browser
    log_in(owner, a.url)
    owner.goto(a.url + session_path)
    owner.select_option("#expires_hours", "1")
    owner.click("#share form.inline-form button")
    link = owner.input_value(".share-url")
    assert "/live/" in link

    viewer = browser_with_mic(None, microphone="missing")  # not logged in, on the other process
    viewer.goto(link.replace(a.url, b.url))
    viewer.wait_for_function("document.getElementById('live').dataset.state === 'live'", timeout=20_000)
    viewer.wait_for_function("document.querySelectorAll('#finals li').length >= 2", timeout=60_000)
    ARTIFACTS.mkdir(exist_ok=True)
    viewer.screenshot(path=str(ARTIFACTS / "live-viewer.png"))
    # jfk ends after 11 s, then 15 s of silence; beckett's words reach the viewer after the pause.
    viewer.wait_for_function("[...document.querySelectorAll('#finals li .text')].some("
                             "e => /tried|failed/i.test(e.textContent))", timeout=60_000)
    time.sleep(4)  # let the recording play out
    speaker.click("#stop")
    speaker.wait_for_function("document.getElementById('state').textContent === 'ended'", timeout=60_000)
    viewer.wait_for_function("document.getElementById('live').dataset.state === 'ended'", timeout=20_000)
    viewer.screenshot(path=str(ARTIFACTS / "live-viewer-after-pause.png"))
    spoken = speaker.eval_on_selector_all("#finals li .text", "els => els.map(e => e.textContent)")
    seen = viewer.eval_on_selector_all("#finals li .text", "els => els.map(e => e.textContent)")
    assert seen == spoken and len(seen) >= 4
    assert viewer.evaluate("window.sttTestHook.live.reconnects") == 0  # one socket, through the pause


def test_korean_speech_with_live_english_translation(server, browser_with_mic):
    page = browser_with_mic(DATA / "ko/kspon_005.wav")
    log_in(page, server)
    page.select_option("#lang", "ko-KR")
    page.select_option("#translate-to", "en")
    page.click("#start")
    page.wait_for_function("document.querySelector('#finals li .translation')?.textContent.length > 3", timeout=60_000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "recorder-translation.png"))
    english = page.eval_on_selector("#finals li .translation", "e => e.textContent")
    assert "famil" in english.lower(), english
    page.click("#stop")
    page.wait_for_function("document.getElementById('state').textContent === 'ended'", timeout=60_000)
    page.reload()  # the choices are remembered
    assert page.eval_on_selector("#translate-to", "e => e.value") == "en"
    assert page.eval_on_selector("#lang", "e => e.value") == "ko-KR"


def test_a_dropped_connection_resumes_the_same_session_without_losing_speech(server, browser_with_mic):
    page = browser_with_mic(DATA / "en/jfk.wav")
    log_in(page, server)
    page.select_option("#lang", "en-US")
    page.click("#start")
    page.wait_for_function("document.querySelectorAll('#finals li').length >= 1", timeout=60_000)
    session = page.evaluate("window.sttTestHook.recorder.session")
    page.evaluate("window.sttTestHook.recorder.socket.close()")  # the network drops mid-speech
    page.wait_for_function("document.getElementById('state').textContent === 'reconnecting'", timeout=5_000)
    page.wait_for_function("document.getElementById('state').textContent === 'listening'", timeout=15_000)
    assert "Reconnected" in page.eval_on_selector("#notice", "e => e.textContent")
    assert page.evaluate("window.sttTestHook.recorder.session") == session
    time.sleep(11)
    page.click("#stop")
    page.wait_for_function("document.getElementById('state').textContent === 'ended'", timeout=60_000)
    finals = page.eval_on_selector_all("#finals li .text", "els => els.map(e => e.textContent)")
    wer = jiwer.wer(normalise_en((DATA / "en/jfk.txt").read_text()), normalise_en(" ".join(finals)))
    assert wer <= 0.15, (wer, finals)
    page.goto(f"{server}/sessions/{session}/")
    assert page.eval_on_selector_all(".segments li .text", "els => els.map(e => e.textContent)") == finals


def test_server_killed_and_restarted_mid_session_the_page_carries_on(daphne, browser_with_mic):
    page = browser_with_mic(DATA / "en/jfk.wav")
    log_in(page, daphne.url)
    page.select_option("#lang", "en-US")
    page.click("#start")
    page.wait_for_function("document.querySelectorAll('#finals li').length >= 1", timeout=60_000)
    first_session = page.evaluate("window.sttTestHook.recorder.session")
    shown = page.eval_on_selector_all("#finals li .text", "els => els.map(e => e.textContent)")
    daphne.kill()  # the server dies; its in-memory session with it
    page.wait_for_function("document.getElementById('state').textContent === 'reconnecting'", timeout=10_000)
    daphne.start()
    page.wait_for_function("document.getElementById('state').textContent === 'listening'", timeout=30_000)
    assert page.evaluate("window.sttTestHook.recorder.session") != first_session  # resume refused: a new session
    assert "new session" in page.eval_on_selector("#notice", "e => e.textContent")
    kept = page.eval_on_selector_all("#finals li .text", "els => els.map(e => e.textContent)")
    assert kept[: len(shown)] == shown  # what was shown stays
    page.click("#stop")
    page.wait_for_function("document.getElementById('state').textContent === 'ended'", timeout=60_000)


@pytest.mark.parametrize("microphone, expected", [
    ("denied", "Microphone access was denied"),
    ("missing", "No microphone was found"),
])
def test_denied_or_missing_microphone_gets_a_clear_message(server, browser_with_mic, microphone, expected):
    page = browser_with_mic(None, microphone)
    log_in(page, server)
    page.click("#start")
    page.wait_for_function("!document.getElementById('error').hidden", timeout=15_000)
    message = page.eval_on_selector("#error", "e => e.textContent")
    assert expected in message
    assert page.eval_on_selector("#state", "e => e.textContent") == "error"
    assert page.eval_on_selector("#start", "e => e.disabled") is False


def test_the_transcript_as_a_working_document(tmp_path, browser_with_mic):
    """Glossary, a correction during the live session that a viewer sees, captions in the viewer's
    language, and the second pass after the session, with the live version one click away."""
    import wave

    import numpy as np

    from .conftest import read_wav

    server = ServerProcess(tmp_path / "server", env={"STT_REFINE": "1"})
    server.create_user("browser")
    server.start()
    talk = tmp_path / "talk.wav"
    room = np.random.default_rng(1).normal(0, 30, 16000).astype("<i2").tobytes()
    with wave.open(str(talk), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
        w.writeframes(read_wav(DATA / "ko/kspon_006.wav") + room + read_wav(DATA / "ko/kspon_016.wav") + room
                      + read_wav(DATA / "ko/kspon_005.wav"))
    try:
        speaker = browser_with_mic(talk)
        log_in(speaker, server.url)
        speaker.goto(server.url + "/settings/glossary/")
        speaker.fill("#id_terms", "ko: 친애하는 판사님께\nko: 강남")
        speaker.click("form.glossary button[type=submit]")
        speaker.wait_for_selector("text=Glossary saved")
        speaker.goto(server.url + "/")
        speaker.select_option("#lang", "ko-KR")
        speaker.click("#start")
        speaker.wait_for_function("document.getElementById('state').textContent === 'listening'", timeout=30_000)
        session_path = speaker.get_attribute("#session-link", "href")

        viewer = browser_with_mic(None, microphone="missing")  # the owner, watching in English
        log_in(viewer, server.url)
        viewer.goto(server.url + session_path + "live/")
        viewer.wait_for_function("document.getElementById('live').dataset.state === 'live'", timeout=20_000)
        viewer.select_option("#caption-language", "en")
        speaker.wait_for_function("document.querySelectorAll('#finals li').length >= 2", timeout=60_000)
        viewer.wait_for_function("document.querySelector('#finals li .translation')?.textContent.length > 2",
                                 timeout=60_000)

        owner = browser_with_mic(None, microphone="missing")  # corrects on the session page, mid-session
        log_in(owner, server.url)
        owner.goto(server.url + session_path)
        owner.click("#segments li:nth-child(2) button.edit")
        owner.fill("#segments li:nth-child(2) input.edit-text", "아 근데 강남은 너무 비싸")
        owner.press("#segments li:nth-child(2) input.edit-text", "Enter")
        owner.wait_for_selector("#segments li:nth-child(2) .text.corrected")
        viewer.wait_for_function("[...document.querySelectorAll('#finals li .text')].some("
                                 "e => e.textContent === '아 근데 강남은 너무 비싸' && e.classList.contains('corrected'))",
                                 timeout=15_000)
        ARTIFACTS.mkdir(exist_ok=True)
        viewer.screenshot(path=str(ARTIFACTS / "working-document-viewer.png"))
        time.sleep(6)  # the rest of the recording
        speaker.click("#stop")
        speaker.wait_for_function("document.getElementById('state').textContent === 'ended'", timeout=60_000)
        spoken = speaker.eval_on_selector_all("#finals li .text", "els => els.map(e => e.textContent)")
        assert "친애하는판사님께" in "".join(spoken).replace(" ", "")  # the glossary's drama title

        for _ in range(120):  # the second pass runs in the background
            owner.goto(server.url + session_path)
            if "Refined by a second pass" in owner.content():
                break
            time.sleep(1)
        assert "Refined by a second pass" in owner.content()
        owner.screenshot(path=str(ARTIFACTS / "working-document-refined.png"), full_page=True)
        current = owner.eval_on_selector_all("#segments li .text", "els => els.map(e => e.dataset.text)")
        assert current[1] == "아 근데 강남은 너무 비싸"  # the correction wins over the second pass
        # The refined text a reader sees marks the words the second pass was unsure of (its own words).
        unsure = owner.locator("#segments li .text mark.unsure")
        assert unsure.count() >= 1 and unsure.first.is_visible()
        assert all(float(t.split()[-1].rstrip("%")) < 50 for t in unsure.evaluate_all("els => els.map(e => e.title)"))
        owner.click("#show-live")
        live = owner.eval_on_selector_all("#segments li .live-text", "els => els.map(e => e.textContent)")
        assert spoken[1] == "아 근데 강남은 너무 비싸"  # the speaker's page got the correction too
        assert live[:1] + live[2:] == spoken[:1] + spoken[2:] and live[1] != spoken[1]  # as first sent
        owner.screenshot(path=str(ARTIFACTS / "working-document-live-version.png"), full_page=True)

        # Staff review it in the admin: a phrase's ▶ plays the recording from that phrase.
        server.manage("shell", "-c", "from django.contrib.auth.models import User; "
                                     "User.objects.filter(username='browser').update(is_staff=True, is_superuser=True)")
        owner.set_viewport_size({"width": 1280, "height": 900})
        owner.goto(server.url + "/admin/transcription/transcriptionsession/" + session_path.strip("/").split("/")[-1]
                   + "/change/")
        play = owner.locator("button.stt-play").nth(2)
        start_s = int(play.get_attribute("data-start")) / 1000
        play.click()
        owner.wait_for_function(f"!document.getElementById('stt-audio').paused && "
                                f"document.getElementById('stt-audio').currentTime >= {start_s}", timeout=10_000)
        assert owner.locator("input[name=speaker_S1]").count() == 1  # speaker names as fields
        owner.screenshot(path=str(ARTIFACTS / "admin-session.png"), full_page=True)
    finally:
        server.stop()


def test_uploading_a_recording_shows_progress_and_the_phrases_then_the_session(server, browser_with_mic, tmp_path):
    """The recorder page's "Upload a recording": an ogg/opus file (a phone's voice memo), transcribed in
    the background while the live page shows its progress and phrases; a text file is refused."""
    from .conftest import read_wav
    from .test_uploads import encoded

    pcm = read_wav(DATA / "ko/kspon_006.wav") + bytes(32000) + read_wav(DATA / "ko/kspon_016.wav")
    memo = tmp_path / "voice memo.ogg"
    memo.write_bytes(encoded(pcm, "ogg", "libopus", 48000))
    notes = tmp_path / "notes.txt"
    notes.write_text("not a recording")
    page = browser_with_mic(None, microphone="missing")
    log_in(page, server)
    page.set_input_files("#upload-file", str(notes))
    page.click("#upload button[type=submit]")
    page.wait_for_selector("#upload-error")
    assert "not_audio" in page.inner_text("#upload-error")

    page.set_input_files("#upload-file", str(memo))
    page.select_option("#upload-lang", "ko-KR")
    page.click("#upload button[type=submit]")
    page.wait_for_url(re.compile(r"/sessions/[0-9a-f-]+/live/$"))
    page.wait_for_function("document.getElementById('live').dataset.state === 'ended'", timeout=120_000)
    assert page.get_attribute("#progress", "value") == "1" and not page.is_hidden("#upload-progress")
    phrases = page.eval_on_selector_all("#finals li .text", "els => els.map(e => e.textContent)")
    assert len(phrases) >= 2 and "드라마" in phrases[0] and "비싸" in phrases[-1], phrases
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "upload-done.png"), full_page=True)
    page.click("text=session page")
    page.wait_for_selector("#segments li")
    assert page.eval_on_selector_all("#segments li .text", "els => els.length") == len(phrases)
    assert page.query_selector("audio#player") is not None  # the recording kept for playback
    page.screenshot(path=str(ARTIFACTS / "upload-session.png"), full_page=True)


def test_speakers_show_as_colours_and_a_name_given_on_the_session_page_shows_everywhere(server, browser_with_mic):
    """Three voices into the microphone (jfk, beckett, a Korean speaker, alternating): each final gets a
    coloured speaker label; the owner names S1 on the session page and the name shows there, in the
    live page and in the TXT export."""
    from .speakers_truth import CONVERSATION

    page = browser_with_mic(CONVERSATION)
    log_in(page, server)
    page.select_option("#lang", "auto")
    page.click("#start")
    page.wait_for_function("document.getElementById('state').textContent === 'listening'", timeout=30_000)
    started = time.monotonic()
    page.wait_for_function("document.querySelectorAll('#finals li .speaker').length >= 5", timeout=90_000)
    page.wait_for_timeout(max(0, 41 - (time.monotonic() - started)) * 1000)  # the recording plays to its end
    page.click("#stop")
    page.wait_for_function("document.getElementById('state').textContent === 'ended'", timeout=60_000)
    chips = page.eval_on_selector_all(
        "#finals li .speaker", "els => els.map(e => [e.dataset.speaker, getComputedStyle(e).backgroundColor])")
    labels = {label for label, _ in chips}
    assert 3 <= len(labels) <= 4, chips
    assert len({colour for _, colour in chips}) == len(labels)  # one colour per speaker
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "speakers-recorder.png"), full_page=True)

    session_path = page.get_attribute("#session-link", "href")
    page.goto(server + session_path)
    page.fill("#name-S1", "민수")
    page.click("#speakers button[type=submit]")
    page.wait_for_selector("text=Speakers named.")
    names = page.eval_on_selector_all("#segments li .speaker", "els => els.map(e => e.textContent)")
    assert "민수" in names and "S1" not in names
    page.screenshot(path=str(ARTIFACTS / "speakers-session.png"), full_page=True)
    txt = page.request.get(server + session_path + "export.txt").text()
    assert "민수: " in txt
    page.goto(server + session_path + "live/")
    page.wait_for_function("document.getElementById('live').dataset.state === 'ended'", timeout=20_000)
    assert "민수" in page.eval_on_selector_all("#finals li .speaker", "els => els.map(e => e.textContent)")


def test_the_overlay_for_broadcast_software_is_transparent_and_shows_the_newest_line(server, browser_with_mic):
    """An OBS browser source on a running session's share link: a transparent page, large captions,
    the last `lines` of them, the newest line the session's latest final."""
    speaker = browser_with_mic(DATA / "en/jfk.wav")
    log_in(speaker, server)
    speaker.select_option("#lang", "en-US")
    speaker.click("#start")
    speaker.wait_for_function("document.getElementById('state').textContent === 'listening'", timeout=30_000)
    owner = browser_with_mic(None, microphone="missing")
    log_in(owner, server)
    owner.goto(server + speaker.get_attribute("#session-link", "href"))
    owner.click("#share form.inline-form button")
    link = owner.input_value(".share-url")

    overlay = browser_with_mic(None, microphone="missing")  # not logged in: the link is enough
    overlay.set_viewport_size({"width": 1280, "height": 720})
    overlay.goto(link + "overlay/?lines=2&size=48")
    overlay.wait_for_function("document.querySelectorAll('#overlay .line:not(.interim)').length >= 2",
                              timeout=60_000)
    transparent = overlay.evaluate("[document.documentElement, document.body].map("
                                   "e => getComputedStyle(e).backgroundColor)")
    assert transparent == ["rgba(0, 0, 0, 0)", "rgba(0, 0, 0, 0)"]
    assert overlay.evaluate("getComputedStyle(document.getElementById('overlay')).fontSize") == "48px"
    time.sleep(13 - 2)
    speaker.click("#stop")
    speaker.wait_for_function("document.getElementById('state').textContent === 'ended'", timeout=60_000)
    overlay.wait_for_function("document.getElementById('overlay').dataset.state === 'ended'", timeout=30_000)
    ARTIFACTS.mkdir(exist_ok=True)
    overlay.screenshot(path=str(ARTIFACTS / "overlay.png"), omit_background=True)
    finals = speaker.eval_on_selector_all("#finals li .text", "els => els.map(e => e.textContent)")
    shown = overlay.eval_on_selector_all("#overlay .line", "els => els.map(e => e.textContent)")
    assert shown == finals[-2:], (shown, finals)


def test_a_tab_shared_as_the_source_is_captioned(server, browser_with_mic):
    """"Listen to: a tab's audio" asks for a screen share (getDisplayMedia), not the microphone. Headless
    Chromium fakes the share (its picker auto-accepted) and its audio with the same fake capture file,
    so the captions are those of the recording."""
    page = browser_with_mic(DATA / "en/jfk.wav", extra=("--auto-accept-this-tab-capture",
                                                        "--auto-select-desktop-capture-source=Entire screen"))
    log_in(page, server)
    page.evaluate("""() => { window.asked = [];
        const md = navigator.mediaDevices;
        for (const name of ["getUserMedia", "getDisplayMedia"]) {
            const real = md[name].bind(md);
            md[name] = (c) => { window.asked.push(name); return real(c); }; } }""")
    page.select_option("#lang", "en-US")
    page.select_option("#source", "tab")
    page.click("#start")
    page.wait_for_function("document.getElementById('state').textContent === 'listening'", timeout=30_000)
    page.wait_for_function("document.querySelectorAll('#finals li').length >= 2", timeout=60_000)
    assert page.evaluate("window.asked") == ["getDisplayMedia"]
    assert page.is_disabled("#source")
    time.sleep(13 - 2)
    page.click("#stop")
    page.wait_for_function("document.getElementById('state').textContent === 'ended'", timeout=60_000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "recorder-tab-audio.png"))
    finals = page.eval_on_selector_all("#finals li .text", "els => els.map(e => e.textContent)")
    wer = jiwer.wer(normalise_en((DATA / "en/jfk.txt").read_text()), normalise_en(" ".join(finals)))
    assert wer <= 0.15, (wer, finals)


def test_a_live_stream_url_given_on_the_recorder_page_is_captioned_until_it_ends(browser_with_mic, tmp_path):
    """"Caption a live stream": an HLS stream served by another loopback server is pulled by the
    server; the live page shows its captions as they come and says when the stream has ended."""
    from .fakes.stream_server import StreamServer, write_hls

    server = ServerProcess(tmp_path / "server", env={"STT_STREAM_ALLOWED_HOSTS": "127.0.0.1"})
    server.create_user("browser")
    server.start()
    try:
        with StreamServer(write_hls(DATA / "en/jfk.wav", tmp_path / "hls").parent) as source:
            page = browser_with_mic(None, microphone="missing")
            log_in(page, server.url)
            page.fill("#stream-url", f"{source.url}/live.m3u8")
            page.select_option("#stream-lang", "en-US")
            ARTIFACTS.mkdir(exist_ok=True)
            page.locator("#stream").screenshot(path=str(ARTIFACTS / "stream-form.png"))
            page.click("#stream button[type=submit]")
            page.wait_for_selector("#live[data-state=live]", timeout=30_000)
            assert page.is_visible("#stop-stream") and "/live.m3u8" in page.text_content(".source-url")
            page.wait_for_function("document.querySelectorAll('#finals li').length >= 1", timeout=30_000)
            page.wait_for_selector("#live[data-state=ended]", timeout=60_000)
            page.screenshot(path=str(ARTIFACTS / "stream-captioned.png"), full_page=True)
            finals = page.eval_on_selector_all("#finals li .text", "els => els.map(e => e.textContent)")
            reference = normalise_en((DATA / "en" / "jfk.txt").read_text())
            assert jiwer.wer(reference, normalise_en(" ".join(finals))) <= 0.15, finals
            assert not page.is_visible("#stop-stream")  # over: nothing to stop
            page.goto(server.url + "/")
            page.fill("#stream-url", "http://169.254.169.254/latest/meta-data/")
            page.click("#stream button[type=submit]")
            assert "source_not_allowed" in page.text_content("#stream-error")
            page.locator("#stream").screenshot(path=str(ARTIFACTS / "stream-refused.png"))
    finally:
        server.stop()
