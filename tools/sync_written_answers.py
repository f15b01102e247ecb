"""Copy the answer key's worked answers to the written exercises into the notebooks.

    python -m tools.sync_written_answers

teaching/answer_key.md is where the answers are written. The exercises answered in prose or by
a measurement alone (WRITTEN below) also end their notebook with a markdown cell holding the
answer key's words inside nbgrader's solution markers and a folded <details> block, so that the
instructor notebooks carry every solution and tools/make_student_copies.py takes them out.
Run this after editing one of those answers in the answer key (tests/notebooks/test_student_copies.py
checks that the two agree), then tools/mark_slides.py.
"""
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ANSWER_KEY = ROOT / "teaching" / "answer_key.md"
#: The exercises answered in prose or by a measurement alone, as the answer key numbers them.
WRITTEN = ("00.2", "00.3", "01.2", "01.3", "02.3", "03.3", "05.3", "05.4", "06.1", "06.2",
           "07.1", "07.2", "07.3")
HEADING = re.compile(r"^### (\d\d)\.(\d) (.+?) \(([^)]*)\)\s*$")


def answer_key_sections(path: Path = ANSWER_KEY) -> dict[str, tuple[str, str]]:
    """{'00.2': (title, body)} for every '### NN.k Title (kind)' section of the answer key."""
    sections, current = {}, None
    for line in path.read_text().splitlines():
        m = HEADING.match(line)
        if m:
            current = f"{m.group(1)}.{m.group(2)}"
            sections[current] = [m.group(3), []]
        elif line.startswith("#"):
            current = None
        elif current:
            sections[current][1].append(line)
    return {k: (title, re.sub(r"\n-{3,}\s*$", "", "\n".join(body).strip()).strip())
            for k, (title, body) in sections.items()}


def answer_cell_text(key: str, title: str, body: str) -> str:
    """The markdown of one worked answer: its title, then the answer folded in solution markers."""
    return (f"**Exercise {key[-1]}: {title}**\n\n<!-- ### BEGIN SOLUTION -->\n"
            f"<details><summary>Worked answer: try it yourself first</summary>\n\n{body}\n\n"
            f"</details>\n<!-- ### END SOLUTION -->")


def main(argv: list[str] | None = None) -> int:
    sections = answer_key_sections()
    notebooks = {p.name[:2]: p for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")}
    for key in WRITTEN:
        title, body = sections[key]
        path = notebooks[key[:2]]
        nb = json.loads(path.read_text())
        cid = f"written-answer-{key[-1]}"
        source = answer_cell_text(key, title, body).splitlines(keepends=True)
        found = [c for c in nb["cells"] if c.get("id") == cid]
        if found:                                  # keep its place and metadata (slides)
            found[0]["source"] = source
        else:
            nb["cells"].append({"cell_type": "markdown", "id": cid, "metadata": {},
                                "source": source})
        path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
        print(key, path.name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
