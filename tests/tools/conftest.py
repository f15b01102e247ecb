import pytest

from browsers import CHROMIUM_ARGS, chromium, playwright


@pytest.fixture(scope="module")
def browser():
    """One headless chromium for a module's slide decks, opened from disk."""
    executable = chromium()
    with playwright()() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True,
                                    args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
