#!/usr/bin/env python3
"""Man pages from the programs' own --help (one source of truth: the help text).

usage: mkman.py MCWARM MCWARM_CTL OUTDIR

Writes OUTDIR/mcwarm.1.gz, OUTDIR/mcwarm-COMMAND.1.gz for every command that
`mcwarm --help` lists, and OUTDIR/mcwarm-ctl.1.gz. The usage line becomes SYNOPSIS, the
text before the first option DESCRIPTION, option lists are kept as they are laid out,
"exit codes:" becomes EXIT STATUS. Run by the build (CMake) after both binaries.
"""
import datetime
import gzip
import os
import re
import subprocess
import sys


def run(*argv):
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


def esc(line):
    line = line.replace("\\", "\\e").replace("-", "\\-")
    return "\\&" + line if line.startswith((".", "'")) else line


def page(name, what, help_text, version, see_also):
    lines = help_text.rstrip("\n").split("\n")
    usage = lines[0][len("usage: "):] if lines[0].startswith("usage: ") else lines[0]
    out = ['.TH "%s" 1 "%s" "mcwarm %s" "mcwarm manual"' % (
        name.upper(), datetime.date.today().isoformat() if not os.environ.get(
            "SOURCE_DATE_EPOCH") else datetime.datetime.utcfromtimestamp(
            int(os.environ["SOURCE_DATE_EPOCH"])).date().isoformat(), version),
           ".SH NAME", "%s \\- %s" % (esc(name), esc(what)),
           ".SH SYNOPSIS", ".nf", esc(usage), ".fi", ".SH DESCRIPTION"]
    i = 1
    desc = []
    while i < len(lines) and not re.match(r"\s+-", lines[i]) and not lines[i].endswith(":"):
        desc.append(lines[i])
        i += 1
    for para in "\n".join(desc).strip().split("\n\n"):
        out += [".PP", esc(" ".join(l.strip() for l in para.split("\n")))]
    section = "OPTIONS"
    block = []

    def flush():
        if block and any(l.strip() for l in block):
            out.extend([".SH " + section, ".nf"] + [esc(l) for l in block] + [".fi"])
        block.clear()

    for line in lines[i:]:
        if re.match(r"^exit codes", line):
            flush()
            section = "EXIT STATUS"
            rest = line.split(":", 1)[1].strip()
            if rest:
                block.append(rest)
            continue
        if line and not line[0].isspace() and line.rstrip().endswith(":"):
            flush()
            section = line.rstrip(":").upper()
            continue
        block.append(line)
    flush()
    out += [".SH SEE ALSO", ", ".join("\\fB%s\\fR(1)" % s for s in see_also if s != name),
            ".PP", "The runbook: /usr/share/doc/mcwarm/operations.md"]
    return "\n".join(out) + "\n"


def write(outdir, name, text):
    with open(os.path.join(outdir, name + ".1.gz"), "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as f:
            f.write(text.encode())


def main():
    mcwarm, ctl, outdir = sys.argv[1:4]
    os.makedirs(outdir, exist_ok=True)
    version = run(mcwarm, "--version").split()[-1]
    top = run(mcwarm, "--help")
    commands = re.findall(r"^  (\w+)\s+(.+)$", top.split("commands:")[1].split("\n\n")[0], re.M)
    names = ["mcwarm"] + ["mcwarm-" + c for c, _ in commands] + ["mcwarm-ctl"]
    write(outdir, "mcwarm", page("mcwarm", "warm and migrate memcached caches", top, version,
                                 names))
    for cmd, what in commands:
        write(outdir, "mcwarm-" + cmd,
              page("mcwarm-" + cmd, what, run(mcwarm, cmd, "--help"), version, names))
    write(outdir, "mcwarm-ctl", page("mcwarm-ctl", "volumes and whole warm-ups of mcwarm",
                                     run(ctl, "--help"), version, names))


if __name__ == "__main__":
    main()
