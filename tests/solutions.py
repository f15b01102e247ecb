"""What must not show in published material (the website, the lesson's deck): runs of words of
the worked solutions and the answer key that the published material itself lacks. Used by
tests/site/test_site.py and tests/tools/test_lesson_deck.py."""
import html
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHINGLE = 8                        # words in a run of text that counts as quoted


def word_list(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def _runs(words: list[str], n: int) -> set:
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def plain(text: str) -> str:
    """Text of an html, js or json file, without tags and escapes, for matching words."""
    text = re.sub(r"\\u[0-9a-fA-F]{4}|\\[nrt\"\\/]", " ", text)
    return html.unescape(re.sub(r"<[^>]+>", " ", text))


def _output_text(out) -> str:
    texts = [out.get("text", "")] + [v for k, v in out.get("data", {}).items()
                                      if k.startswith("text/")]
    return "\n".join(t if isinstance(t, str) else "".join(t) for t in texts)


def secret_runs(leave_out: tuple[str, ...] = ()) -> set:
    """Runs of words from the worked solutions (code and written) and the answer key that the
    published material (the student copies with their outputs, the guide without the key, the
    READMEs) lacks; the guide's files named in `leave_out` do not count as published (to check
    them).
    A run is SHINGLE words long, or a whole solution region of 4 to SHINGLE words."""
    import nbformat

    from tools.make_student_copies import course_notebooks, solution_regions, student_copy

    secret, published = set(), []
    for path in course_notebooks(ROOT / "notebooks"):
        nb = nbformat.read(path, as_version=4)
        for cell in student_copy(nb).cells:
            published.append(cell.source)
            published += [_output_text(out) for out in cell.get("outputs", [])]
        for cell in nb.cells:
            for region in solution_regions(cell):
                words = word_list("\n".join(region))
                if len(words) >= 4:
                    secret |= _runs(words, min(SHINGLE, len(words)))
    teaching = ROOT / "teaching"
    secret |= _runs(word_list((teaching / "answer_key.md").read_text()), SHINGLE)
    for path in [*teaching.glob("*.md"), ROOT / "README.md", ROOT / "reference" / "README.md"]:
        if path.exists() and path.name != "answer_key.md" and path.name not in leave_out:
            published.append(path.read_text())
    lengths = {len(r) for r in secret}
    shared = set().union(*(_runs(word_list(t), n) for t in published for n in lengths))
    return secret - shared


def shown_secrets(text: str, secret: set) -> list[str]:
    words = word_list(text)
    found = set().union(*(_runs(words, n) for n in {len(r) for r in secret})) & secret
    return sorted(" ".join(r) for r in found)
