import hashlib

from tests.captures import CONTRACT_DIR


def test_captured_files_are_unchanged():
    # given the checksums recorded when the captures were vendored
    expected = {}
    for line in (CONTRACT_DIR / "SHA256SUMS").read_text().splitlines():
        digest, path = line.split(maxsplit=1)
        expected[path.removeprefix("./")] = digest

    # then every file still has its recorded content
    assert len(expected) == 39
    for path, digest in expected.items():
        assert hashlib.sha256((CONTRACT_DIR / path).read_bytes()).hexdigest() == digest, path
