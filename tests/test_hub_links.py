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
