"""A lesson's report and context: self-contained HTML, written as it grows, kept on Ctrl-C."""

from __future__ import annotations

import base64
import os
import re
import shlex
import signal
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType

import html5lib
import matplotlib
import matplotlib.figure
import pytest
import torch
from PIL import Image

import initlab
from initlab import data
from initlab.lessons import LESSONS, _texts, optimizers
from initlab.lessons import run as run_lesson
from initlab.lessons._lesson import Env, subplots
from initlab.lessons._lesson import run_lesson as run_module
from initlab.models import mlp
from initlab.report import Report, loss_curves
from initlab.train import Progress, TrainConfig


def _figure() -> matplotlib.figure.Figure:
    fig, ax = subplots(figsize=(2, 2), dpi=50)
    ax.plot([0, 1], [1, 0])
    ax.set_title("a <line> & more")
    return fig


def test_report_embeds_every_figure_and_saves_it_beside(tmp_path: Path) -> None:
    report = Report("demo", "Demo <report>", tmp_path, subtitle="one & two")
    report.findings(["Loss fell from 0.69 to 0.07 (<0.1)."])
    report.section("Curves", "Costs & accuracy.")
    first = report.figure(_figure(), "cost curve", "the cost")
    second = report.figure(_figure(), "boundaries")
    report.table(["run", "loss"], [["he", 0.0712345], ["zeros", 0.6931]], caption="final")
    report.preformatted(["Cost after iteration 0: 0.69", "<done>"])
    page = report.write().read_text()

    assert first == tmp_path / "cost-curve.png" and second == tmp_path / "boundaries.png"
    embedded = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert [base64.b64decode(e) for e in embedded] == [first.read_bytes(), second.read_bytes()]
    html5lib.HTMLParser(strict=True).parse(page)  # raises on any parse error
    assert "http://" not in page and "https://" not in page and "<script" not in page
    # user text is escaped, not markup
    assert "Demo &lt;report&gt;" in page and "&lt;done&gt;" in page and "one &amp; two" in page
    assert "0.07123" in page and "<li>Loss fell from 0.69 to 0.07 (&lt;0.1).</li>" in page
    assert page.index("Findings") < page.index("Curves")
    # nothing but the page and its figures: no temporary file is left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "boundaries.png",
        "cost-curve.png",
        "index.html",
    ]


def test_report_is_rewritten_after_each_part_so_an_interrupt_keeps_it(tmp_path: Path) -> None:
    report = Report("demo", "Demo", tmp_path)
    report.figure(_figure(), "first")
    page = (tmp_path / "index.html").read_text()
    assert page.count("data:image/png;base64,") == 1
    report.figure(_figure(), "second")
    assert (tmp_path / "index.html").read_text().count("data:image/png;base64,") == 2


def test_report_in_memory_writes_nothing(tmp_path: Path) -> None:
    report = Report("demo", "Demo")
    assert report.figure(_figure(), "f") is None
    assert "data:image/png;base64," in report.html()
    with pytest.raises(ValueError, match="no output folder"):
        report.write()


def test_report_rejects_bad_input(tmp_path: Path) -> None:
    report = Report("demo", "Demo", tmp_path)
    report.figure(_figure(), "f")
    with pytest.raises(ValueError, match="already has a figure named 'f'"):
        report.figure(_figure(), "F")
    with pytest.raises(ValueError, match="needs a name"):
        report.image(b"\x89PNG....", "!!!")
    with pytest.raises(ValueError, match="expected PNG bytes"):
        report.image(b"GIF89a", "gif")
    with pytest.raises(ValueError, match="2 cells"):
        report.table(["a", "b"], [[1, 2, 3]])


def _half_then_interrupt(written: list[str]):  # type: ignore[no-untyped-def]
    """A Path.write_bytes / write_text that writes half its data, then takes a Ctrl-C:
    the file a killed or interrupted writer leaves."""

    def write(self: Path, data: bytes | str, *args: object, **kwargs: object) -> int:
        written.append(self.name)
        raw = data.encode() if isinstance(data, str) else data
        with open(self, "wb") as file:
            file.write(raw[: len(raw) // 2])
        raise KeyboardInterrupt

    return write


def test_an_interrupted_report_write_keeps_each_file_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = Report("demo", "Demo", tmp_path)
    report.figure(_figure(), "first")
    page, png = (tmp_path / "index.html").read_bytes(), (tmp_path / "first.png").read_bytes()
    written: list[str] = []
    monkeypatch.setattr(Path, "write_bytes", _half_then_interrupt(written))
    monkeypatch.setattr(Path, "write_text", _half_then_interrupt(written))
    with pytest.raises(KeyboardInterrupt):
        report.figure(_figure(), "second")  # stopped half way through second.png
    with pytest.raises(KeyboardInterrupt):
        report.text("more")  # stopped half way through index.html
    monkeypatch.undo()
    # the half-written files were temporaries beside the targets, and are gone
    assert len(written) == 2 and all(n.startswith(".") and n.endswith(".part") for n in written)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["first.png", "index.html"]
    assert (tmp_path / "index.html").read_bytes() == page
    assert (tmp_path / "first.png").read_bytes() == png


def test_a_saved_figure_is_whole_and_in_its_suffix_format(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    steps, loss = torch.arange(5), torch.rand(5, 2) + 0.1
    png = loss_curves(steps, loss, ["a", "b"], tmp_path / "cost.png")
    with Image.open(png) as image:
        assert image.format == "PNG"
        image.load()
    svg = loss_curves(steps, loss, ["a", "b"], tmp_path / "cost.svg")
    assert svg.read_text().lstrip().startswith("<?xml") and "<svg" in svg.read_text()
    # no suffix: a PNG with ".png" added, as matplotlib itself names it
    assert loss_curves(steps, loss, ["a", "b"], tmp_path / "bare") == tmp_path / "bare.png"
    with pytest.raises(ValueError, match="Format 'xyz' is not supported"):
        loss_curves(steps, loss, ["a", "b"], tmp_path / "cost.xyz")
    before = png.read_bytes()
    real_savefig = matplotlib.figure.Figure.savefig

    def savefig_interrupted(self: matplotlib.figure.Figure, fname: Path, **kwargs: object) -> None:
        real_savefig(self, fname, **kwargs)
        with open(fname, "r+b") as file:
            file.truncate(len(before) // 2)
        raise KeyboardInterrupt

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", savefig_interrupted)
    with pytest.raises(KeyboardInterrupt):
        loss_curves(steps, loss * 2, ["a", "b"], png)
    with pytest.raises(KeyboardInterrupt):
        loss_curves(steps, loss, ["a", "b"], tmp_path / "new.png")
    assert png.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bare.png", "cost.png", "cost.svg"]


class _Interrupting:
    """A progress display that presses Ctrl-C at the engine's first report."""

    def __init__(self) -> None:
        self.stages: list[str] = []
        self.reports = 0

    def stage(self, text: str) -> None:
        self.stages.append(text)

    def __call__(self, progress: Progress, /) -> None:
        self.reports += 1
        if self.reports == 1:
            os.kill(os.getpid(), signal.SIGINT)


@dataclass(frozen=True)
class _Size:
    steps: int


@dataclass(frozen=True)
class _Facts:
    final_loss: float


def _demo_lesson(
    *, found: bool = True, interrupt_drawing: bool = False, extra: str | None = None
) -> ModuleType:
    """A lesson module of the one shape: it trains a small stack and draws two figures.
    It has one knob, ``steps``; ``extra`` is one more finding."""
    demo = ModuleType("demo")
    demo.KNOBS = {"steps": "SGD steps"}  # type: ignore[attr-defined]
    demo.NAME, demo.TITLE, demo.QUESTION = "demo", "Demo", "Does the demo train?"  # type: ignore[attr-defined]
    demo.SIZES = {"quick": _Size(50), "default": _Size(200)}  # type: ignore[attr-defined]

    def setup(size: _Size) -> str:
        return f"{size.steps} steps"

    def compute(size: _Size, env: Env) -> _Facts:
        env.part_done(lambda report: report.figure(_figure(), "part-1"))
        env.stage("training")
        ds = data.load("circles", n=64, seed=0)
        stack = mlp([2, 4, 1], "relu", members=2)
        config = TrainConfig(loss="bce", lr=0.1, steps=size.steps, check_every=5)
        result = env.train(stack, ds, config)
        return _Facts(result.members[0].final_loss)

    def draw(facts: _Facts, report: Report) -> None:
        report.figure(_figure(), "before")
        if interrupt_drawing:
            raise KeyboardInterrupt
        report.figure(_figure(), "after")

    def findings(facts: _Facts) -> list[str]:
        said = [f"The loss ended at {facts.final_loss:.3f}."] + ([extra] if extra else [])
        return said if found else []

    demo.setup, demo.compute, demo.draw, demo.findings = setup, compute, draw, findings  # type: ignore[attr-defined]
    return demo


def test_the_runner_computes_draws_and_finds_at_the_size_asked(tmp_path: Path) -> None:
    lesson = run_module(_demo_lesson(), tmp_path, quick=True)
    assert lesson.quick and lesson.question == "Does the demo train?"
    assert lesson.findings == (f"The loss ended at {lesson.facts.final_loss:.3f}.",)
    assert [p.name for p in lesson.figures] == ["before.png", "after.png"]
    page = (tmp_path / "index.html").read_text()
    assert "50 steps" in page and "Does the demo train?" in page
    full = run_module(_demo_lesson(), None, quick=False)
    assert full.report is None and "200 steps" in full.html and not full.quick


def test_an_interrupted_lesson_keeps_the_figures_it_made(tmp_path: Path) -> None:
    # Ctrl-C while drawing: the figures drawn so far are on the page and on disk.
    with pytest.raises(KeyboardInterrupt):
        run_module(_demo_lesson(interrupt_drawing=True), tmp_path, quick=True)
    page = (tmp_path / "index.html").read_text()
    assert page.count("data:image/png;base64,") == 1 and (tmp_path / "before.png").exists()
    # Ctrl-C while computing (at the engine's first report): the finished part's figure
    # is on the page and on disk, and the page says where the lesson stopped.
    display = _Interrupting()
    with pytest.raises(KeyboardInterrupt):
        run_module(_demo_lesson(), tmp_path / "early", quick=True, progress=display)
    assert display.stages == ["training"] and display.reports == 1
    page = (tmp_path / "early" / "index.html").read_text()
    assert "Interrupted while training" in page
    assert (
        page.count("data:image/png;base64,") == 1 and (tmp_path / "early" / "part-1.png").exists()
    )


def test_a_lesson_must_find_something(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="without a finding"):
        run_module(_demo_lesson(found=False), tmp_path, quick=True)
    lesson = run_module(_demo_lesson(), tmp_path, quick=True)
    assert lesson.report == tmp_path / "index.html" and "The loss ended at" in lesson.html


@pytest.mark.parametrize("name", list(LESSONS))
def test_every_lesson_refuses_an_unavailable_device_clearly(name: str, tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ValueError, match="no CUDA GPU"):
        run_lesson(name, tmp_path, quick=True, device="cuda")
    with pytest.raises(ValueError, match="device"):
        run_lesson(name, tmp_path, quick=True, device="tpu")
    assert not list(tmp_path.iterdir())  # refused before anything was written


# ------------------------------------------------------------ the page that teaches


def _quick_optimizers() -> ModuleType:
    """The optimizers lesson at 20 epochs (its own quick size takes 20 s): same shape,
    same texts."""
    quick = ModuleType("optimizers_quick")
    quick.__dict__.update({k: v for k, v in vars(optimizers).items() if not k.startswith("__")})
    quick.SIZES = {"quick": optimizers.Size(epochs=20), "default": optimizers.Size(epochs=20)}  # type: ignore[attr-defined]
    return quick


def test_a_lesson_page_reads_question_setup_findings_figures_takeaway_try_next_footer(
    tmp_path: Path,
) -> None:
    command = "initlab lesson optimizers --quick --out reports/opt"
    lesson = run_module(_quick_optimizers(), tmp_path, quick=True, command=command)
    page = (tmp_path / "index.html").read_text(encoding="utf-8")
    html5lib.HTMLParser(strict=True).parse(page)
    takeaway = _texts.TAKEAWAYS["optimizers"]
    assert lesson.takeaway == takeaway and lesson.try_next == _texts.TRY_NEXT["optimizers"]
    marks = [
        '<p class="question">' + optimizers.QUESTION,
        '<section class="setup">',
        '<section class="findings">',
        "<li>" + lesson.findings[0],
        'src="data:image/png;base64,',
        '<section class="takeaway">',
        takeaway,
        '<section class="try-next">',
        "<code>" + lesson.try_next[0],
        "<footer>",
        f"<code>{command}</code>",
        f"<dd>{initlab.__version__}</dd>",
        f"<dd>{torch.__version__}</dd>",
        "<dd>cpu</dd>",
        "<dd>yes: the quick sizes</dd>",
    ]
    where = [page.find(m) for m in marks]
    assert -1 not in where, [m for m, w in zip(marks, where, strict=True) if w == -1]
    assert where == sorted(where), "the page's parts are out of order"
    # one tab: no external URL, no script, nothing fetched from anywhere
    assert "http://" not in page and "https://" not in page and "<script" not in page
    assert "<link" not in page and re.findall(r'src="(?!data:)', page) == []
    # a figure never overflows the 960 px column
    assert "max-width: 960px" in page and "max-width: 100%" in page


def test_the_footer_says_the_python_call_and_the_options_when_no_command_is_given(
    tmp_path: Path,
) -> None:
    lesson = run_module(_demo_lesson(), None, quick=True, options={"steps": 7})
    assert "initlab.lessons.run(&#x27;demo&#x27;, quick=True, options={&#x27;steps&#x27;: 7})" in (
        lesson.html
    )
    assert "<dt>options</dt><dd>steps=7</dd>" in lesson.html
    assert lesson.options == (("steps", 7),)
    plain = run_module(_demo_lesson(), None, quick=False)
    assert "<dd>none (the lesson's defaults)</dd>" in plain.html
    assert "<dd>no: the full sizes</dd>" in plain.html


def test_every_text_on_the_page_is_escaped(tmp_path: Path) -> None:
    evil = "<script>alert('x')</script> & <b>bold</b>"
    lesson = run_module(_demo_lesson(extra=evil), tmp_path, quick=True, command=evil)
    report = Report("x", evil)
    report.question(evil)
    report.setup(evil)
    report.takeaway(evil)
    report.try_next([evil])
    report.table([evil], [[evil]], caption=evil)
    report.section(evil, evil)
    report.footer(command=evil, options={evil: evil})
    report.figure(_figure(), "f", caption='a" onerror="alert(1)')  # into alt="…"
    assert 'alt="a&quot; onerror=&quot;alert(1)"' in report.html()
    for page in (lesson.html, lesson.body, report.html(), report.fragment()):
        assert "<script" not in page and "<b>" not in page
        assert (
            "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;"
            in page
        )
        html5lib.HTMLParser(strict=True).parse(
            page if page.startswith("<!DOCTYPE") else f"<!DOCTYPE html><title>t</title>{page}"
        )
    # raw is the one way in for markup, and says so
    report.raw("<em>as is</em>")
    assert "<em>as is</em>" in report.html()
    with pytest.raises(TypeError, match="sequence of commands"):
        report.try_next("initlab lessons")


def test_a_knob_changes_the_size_and_anything_else_is_refused(tmp_path: Path) -> None:
    lesson = run_module(_demo_lesson(), None, quick=True, options={"steps": 7})
    assert "7 steps" in lesson.html and "50 steps" not in lesson.html
    # a command line gives strings: converted to the field's type
    assert "9 steps" in run_module(_demo_lesson(), None, quick=True, options={"steps": "9"}).html
    with pytest.raises(ValueError, match=r"lesson 'demo' takes the options steps\. Got 'depth'"):
        run_module(_demo_lesson(), tmp_path / "a", quick=True, options={"depth": 50})
    with pytest.raises(ValueError, match=r"'steps' option of lesson 'demo' must be a int"):
        run_module(_demo_lesson(), tmp_path / "b", quick=True, options={"steps": "many"})
    with pytest.raises(ValueError, match="must be a int"):
        run_module(_demo_lesson(), tmp_path / "c", quick=True, options={"steps": 2.5})
    # a lesson with no knobs takes no option
    with pytest.raises(ValueError, match="lesson 'optimizers' takes no options"):
        run_lesson("optimizers", tmp_path / "d", quick=True, options={"depth": 50})
    assert not list(tmp_path.iterdir())  # refused before anything was written


def test_a_lesson_is_one_line_in_a_repl_and_its_page_in_a_notebook(tmp_path: Path) -> None:
    lesson = run_module(_demo_lesson(), tmp_path, quick=True)
    line = repr(lesson)
    assert "\n" not in line and len(line) - len(str(tmp_path)) < 70
    assert line.startswith("<Lesson 'demo' quick: ") and line.endswith(
        f"1 finding, report={str(tmp_path / 'index.html')!r}>"
    )
    assert re.search(r": \d+\.\d s, ", line)
    assert repr(replace(lesson, report=None, quick=False)).endswith("1 finding, in memory>")
    shown = lesson._repr_html_()
    assert not shown.startswith("<!DOCTYPE") and "<footer>" not in shown
    for part in ("Does the demo train?", lesson.findings[0], "data:image/png;base64,"):
        assert part in shown
    assert shown.index("Does the demo train?") < shown.index(lesson.findings[0])
    # its stylesheet restyles nothing outside the lesson's own <div>
    style = re.search(r"<style>(.*?)</style>", shown, re.S)
    assert style is not None
    selectors = re.findall(
        r"(?:^|})\s*([^{}]+?)\s*{", re.sub(r"/\*.*?\*/", "", style[1], flags=re.S)
    )
    assert selectors and all(
        sel.strip().startswith((".initlab", "body.initlab"))
        for group in selectors
        for sel in group.split(",")
    )


def test_every_lesson_has_a_takeaway_and_commands_to_try_next() -> None:
    from typer.main import get_command

    from initlab.cli import app
    from initlab.playground import PRESETS

    cli = get_command(app)
    lesson = cli.get_command(cli.make_context("initlab", ["lesson"]), "lesson")  # type: ignore[attr-defined]
    with pytest.raises(Exception, match="No such option: --no-such"):  # options are checked
        lesson.make_context("lesson", ["init", "--no-such"])
    titles = {p.title for p in PRESETS}
    assert set(_texts.TAKEAWAYS) == set(LESSONS) == set(_texts.TRY_NEXT)
    for name in LESSONS:
        takeaway = _texts.TAKEAWAYS[name]
        assert takeaway.endswith(".") and takeaway.count(". ") == 0, name  # one sentence
        assert 2 <= len(_texts.TRY_NEXT[name]) <= 3, name
        for line in _texts.TRY_NEXT[name]:
            command, _, comment = line.partition("  # ")
            words = shlex.split(command)
            assert words[0] == "initlab", line
            # each is a command the CLI takes, with options it has
            with cli.make_context("initlab", words[1:]) as top:
                sub = cli.get_command(top, words[1])  # type: ignore[attr-defined]
                assert sub is not None, line
                sub.make_context(words[1], words[2:], parent=top)  # raises on a bad option
            if words[1] == "playground":  # the comment names a preset the page offers
                assert any(f"“{t}”" in comment for t in titles), line


def test_a_lesson_leaves_the_matplotlib_backend_alone(tmp_path: Path) -> None:
    script = (
        "import matplotlib\n"
        "from initlab.lessons import run\n"
        "before = matplotlib.get_backend()\n"
        f"run('optimizers', {str(tmp_path)!r}, quick=True)\n"
        "print(before, matplotlib.get_backend())\n"
    )
    env = {**os.environ, "MPLBACKEND": "svg"}  # not Agg, so a switch to Agg shows
    # the real lesson, at 20 epochs
    script = script.replace(
        "from initlab.lessons import run\n",
        "from initlab.lessons import run, optimizers\n"
        "optimizers.SIZES = {'quick': optimizers.Size(epochs=20), 'default': None}\n",
    )
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["svg", "svg"]
    assert (tmp_path / "index.html").exists()
    assert matplotlib.get_backend()  # and this process's backend is whatever it was
