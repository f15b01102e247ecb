"""One entry point for the course's maintainer tooling.

    python -m tools build [--regenerate] [--check]   # every build step, in order
    python -m tools STEP [ARGS ...]                   # one step, e.g. `python -m tools budget`

The build steps, in the order `build` runs them (each is also a module: `python -m tools.NAME`):

    sync_repo_url          the repository address in badges, install cells and README links
    sync_written_answers   the answer key's written answers, folded into the notebooks
    run_notebooks          regenerate the stored outputs (cpu profile, real data; only with
                           --regenerate: it trains for many minutes); without it, only the
                           headers' computer times are written from notebooks/timings.json
    mark_slides            the slide metadata of every notebook cell
    make_slides            the offline slide decks (slides/): one per notebook, and the
                           90-minute lesson's from teaching/lesson_slides.md
    make_student_copies    the student copies (student/)
    budget                 the course's size budgets (fails when one is broken)

Other tools, not build steps:

    site                   the course's website (build/site/; needs the [site] extra)
    reproduce              make the reference runs (He et al. 2015, Fig. 6 and Table 6) and
                           print the paper-against-measured table (`reproduce --summary`)
    release                the class release: student copies, package, reference runs, as
                           build/release/ and the branch named by pyproject's release-branch
    class_hub              a class simulated on a real JupyterHub on 127.0.0.1 (deploy/)
    reference_on_gpu       the reference sweeps on a GPU machine

`build --check` changes nothing: it runs the steps that can check (sync_repo_url, the headers'
times of run_notebooks, mark_slides, make_slides's slide list, budget) with --check and reports the first that fails.
"""
from __future__ import annotations

import importlib
import sys

BUILD_STEPS = ("sync_repo_url", "sync_written_answers", "run_notebooks", "mark_slides",
               "make_slides", "make_student_copies", "budget")
CHECKS = {"sync_repo_url": ["--check"], "run_notebooks": ["--headers", "--check"],
          "mark_slides": ["--check"], "make_slides": ["--check"], "budget": []}
OTHER_TOOLS = ("site", "reproduce", "release", "class_hub", "reference_on_gpu")


def run_step(name: str, argv: list[str]) -> int:
    print(f"--- {name} {' '.join(argv)}".rstrip(), flush=True)
    return importlib.import_module(f"tools.{name}").main(argv) or 0


def build(argv: list[str]) -> int:
    regenerate, check = "--regenerate" in argv, "--check" in argv
    unknown = [a for a in argv if a not in ("--regenerate", "--check")]
    if unknown:
        print(f"build: unknown option {' '.join(unknown)} (--regenerate, --check)",
              file=sys.stderr)
        return 2
    for name in BUILD_STEPS:
        if check:
            if name not in CHECKS:
                continue
            args = CHECKS[name]
        elif name == "run_notebooks" and not regenerate:
            args = ["--headers"]
        else:
            args = {"make_student_copies": ["--out", "student", "--force"]}.get(name, [])
        status = run_step(name, args)
        if status:
            print(f"build stopped: {name} failed (exit {status})", file=sys.stderr)
            return status
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name == "build":
        return build(rest)
    if name not in BUILD_STEPS + OTHER_TOOLS:
        print(f"unknown step {name!r}; the steps: build, {', '.join(BUILD_STEPS + OTHER_TOOLS)}",
              file=sys.stderr)
        return 2
    return run_step(name, rest)


if __name__ == "__main__":
    sys.exit(main())
