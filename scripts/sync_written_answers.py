"""Copy the answer key's worked answers to the written exercises into the notebooks.

    python scripts/sync_written_answers.py

teaching/answer_key.md is where the answers are written. The exercises answered in prose or by
a measurement alone (WRITTEN below) also end their notebook with a markdown cell holding the
answer key's words inside nbgrader's solution markers and a folded <details> block, so that the
instructor notebooks carry every solution and scripts/make_student_copies.py takes them out.
Run this after editing one of those answers in the answer key (tests/test_student_copies.py
checks that the two agree), then scripts/mark_slides.py.
"""
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
key = (ROOT / 'teaching' / 'answer_key.md').read_text().splitlines()
WRITTEN = {"00.2","00.3","01.2","01.3","02.3","03.3","05.3","05.4","06.1","06.2","07.1","07.2","07.3"}
sections = {}
cur = None
for line in key:
    m = re.match(r"^### (\d\d)\.(\d) (.+?) \(([^)]*)\)\s*$", line)
    if m:
        cur = f"{m.group(1)}.{m.group(2)}"
        sections[cur] = {"nb": m.group(1), "k": int(m.group(2)), "title": m.group(3), "body": []}
        continue
    if line.startswith("#"):
        cur = None
        continue
    if cur:
        sections[cur]["body"].append(line)
nbs = {p.name[:2]: p for p in (ROOT / 'notebooks').glob('[0-9][0-9]_*.ipynb')}
for key_id in sorted(WRITTEN):
    sec = sections[key_id]
    body = "\n".join(sec["body"]).strip()
    body = re.sub(r"\n-{3,}\s*$", "", body).strip()
    text = (f"**Exercise {sec['k']}: {sec['title']}**\n\n<!-- ### BEGIN SOLUTION -->\n"
            f"<details><summary>Worked answer: try it yourself first</summary>\n\n{body}\n\n"
            f"</details>\n<!-- ### END SOLUTION -->")
    path = nbs[sec["nb"]]
    nb = json.loads(path.read_text())
    cid = f"written-answer-{sec['k']}"
    found = [c for c in nb["cells"] if c.get("id") == cid]
    if found:                                  # keep its place and metadata (slides)
        found[0]["source"] = text.splitlines(keepends=True)
    else:
        nb["cells"].append({"cell_type": "markdown", "id": cid, "metadata": {},
                            "source": text.splitlines(keepends=True)})
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    print(key_id, path.name, len(body))
