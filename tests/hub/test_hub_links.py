from urllib.parse import parse_qs, urlsplit

import pytest

from resnet_nb.hub import nbgitpuller_link


def test_the_link_pulls_the_branch_and_opens_the_notebook_in_its_folder():
    link = nbgitpuller_link("https://hub.example.org/", "https://github.com/o/course.git",
                            "class", "notebooks/00_start_here.ipynb")
    parts = urlsplit(link)
    assert (parts.scheme, parts.netloc, parts.path) == (
        "https", "hub.example.org", "/hub/user-redirect/git-pull")
    q = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert q == {"repo": "https://github.com/o/course.git", "branch": "class",
                 "urlpath": "lab/tree/course/notebooks/00_start_here.ipynb"}


def test_the_classic_notebook_and_a_folder():
    link = nbgitpuller_link("http://127.0.0.1:8000", "https://github.com/o/c", "main", "",
                            app="notebook")
    assert parse_qs(urlsplit(link).query)["urlpath"] == ["tree/c"]


@pytest.mark.parametrize("hub, repo, app", [("hub.example.org", "https://x/y", "lab"),
                                            ("https://h", " ", "lab"),
                                            ("https://h", "https://x/y", "vscode")])
def test_bad_arguments_are_refused_with_their_name(hub, repo, app):
    with pytest.raises(ValueError):
        nbgitpuller_link(hub, repo, "main", app=app)


# --- python -m resnet_nb hub-link ------------------------------------------------------------

def _course(tmp_path, hub_url=""):
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "01_degradation.ipynb").write_text("{}")
    (tmp_path / "pyproject.toml").write_text(
        '[project.urls]\nRepository = "https://github.com/teacher/course/tree/spring"\n'
        f'[tool.resnet_nb]\nrelease-branch = "class-2026"\nhub-url = "{hub_url}"\n')
    return tmp_path


def test_hub_link_takes_its_defaults_from_the_courses_pyproject(tmp_path, monkeypatch, capsys):
    from resnet_nb.cli import main
    monkeypatch.chdir(_course(tmp_path, "https://hub.school.example"))
    assert main(["hub-link", "01_degradation.ipynb"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [l.split()[0] for l in lines] == ["notebooks/", "01_degradation.ipynb"]
    q = {k: v[0] for k, v in parse_qs(urlsplit(lines[1].split()[1]).query).items()}
    assert q == {"repo": "https://github.com/teacher/course", "branch": "class-2026",
                 "urlpath": "lab/tree/course/notebooks/01_degradation.ipynb"}
    assert lines[1].split()[1].startswith("https://hub.school.example/hub/user-redirect/git-pull?")


def test_hub_link_mistakes_are_one_line(tmp_path, monkeypatch, capsys):
    from resnet_nb.cli import main
    monkeypatch.chdir(_course(tmp_path))
    assert main(["hub-link"]) == 2                                   # no hub-url set
    err = capsys.readouterr().err
    assert "give --hub" in err and err.count("\n") == 1
    assert main(["hub-link", "--hub", "https://h.example", "99_nothing.ipynb"]) == 2
    err = capsys.readouterr().err
    assert "no 99_nothing.ipynb in" in err and err.count("\n") == 1
    monkeypatch.chdir(tmp_path / "notebooks")                        # no pyproject here
    assert main(["hub-link", "--hub", "https://h.example"]) == 2
    assert "give --repo, --branch" in capsys.readouterr().err
