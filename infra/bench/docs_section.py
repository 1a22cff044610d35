"""Writes a section of docs/benchmarks.md: the text between <!-- bench:NAME:begin --> and <!-- bench:NAME:end -->
is replaced (the markers are added at the end of the document when missing); nothing else is touched.

usage: docs_section.py DOC NAME < body
"""
import os
import sys


def write_section(doc: str, name: str, body: str) -> None:
    begin, end = f"<!-- bench:{name}:begin -->", f"<!-- bench:{name}:end -->"
    section = f"{begin}\n{body.strip()}\n{end}"
    content = open(doc).read() if os.path.exists(doc) else ""
    if begin in content and end in content:
        content = content[: content.index(begin)] + section + content[content.index(end) + len(end):]
    else:
        content = content.rstrip() + "\n\n" + section + "\n"
    with open(doc, "w") as out:
        out.write(content)


if __name__ == "__main__":
    write_section(sys.argv[1], sys.argv[2], sys.stdin.read())
