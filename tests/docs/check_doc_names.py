#!/usr/bin/env python3
"""check_doc_names.py: every code name a document writes in `backticks` exists in the tree.

docs/architecture.md walks items through the code by name; a rename that forgets the page
would leave a newcomer searching for a function that is gone. This reads the page's inline
code spans and checks the ones shaped like code names:
  - a source or doc file or a folder (`mspipe.c`, `core/net/`, `uring/fault.c`): a file
    of the tree ends with that path (run-time names such as `dump-N.json` are prose);
  - `struct x`, `enum x`: the tree declares it;
  - an identifier with an underscore or parentheses (`mgpipe_kick`, `engine_fail()`,
    `MCW_BATCH_KEYS`) or a field (`hostport.sec`): each word stands in a source file.
Everything else (command lines, options such as `--crawl`, protocol words with spaces)
is prose and is not checked. Usage: check_doc_names.py ROOT DOC... ; exit 0 when every
name exists, 1 naming each missing one with its line. check_doc_names.py --self-test ROOT
checks that a stale name of each kind is caught.
"""
import os
import re
import sys

SOURCE_EXT = ('.c', '.h', '.py', '.sh', '.yml', '.yaml', '.cmake', '.j2')
SKIP_DIRS = {'.git', 'node_modules', '__pycache__'}
IDENT = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*(\(\))?$')
TYPE = re.compile(r'^(struct|enum|union) ([A-Za-z_][A-Za-z0-9_]*)$')
PATH = re.compile(r'^[A-Za-z0-9_.\-/]*[A-Za-z0-9_\-]+(\.(c|h|py|md|sh|yml|txt|cmake)|/)$')
MEMBER = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$')


def tree(root):
    files = []
    for d, dirs, names in os.walk(root):
        dirs[:] = [x for x in dirs if x not in SKIP_DIRS and not x.startswith('build')]
        for n in names:
            files.append(os.path.relpath(os.path.join(d, n), root))
    return files


def words_and_types(root, files):
    words, types = set(), set()
    me = os.path.realpath(__file__)
    for f in files:
        if os.path.realpath(os.path.join(root, f)) == me:
            continue  # this file's self-test names stale names on purpose
        if not (f.endswith(SOURCE_EXT) or os.path.basename(f) in ('CMakeLists.txt',)):
            continue
        try:
            text = open(os.path.join(root, f), encoding='utf-8', errors='replace').read()
        except OSError:
            continue
        words.update(re.findall(r'[A-Za-z_][A-Za-z0-9_]*', text))
        types.update(re.findall(r'\b((?:struct|enum|union) [A-Za-z_][A-Za-z0-9_]*)', text))
    return words, types


def spans(path):
    in_fence = False
    for lineno, line in enumerate(open(path, encoding='utf-8'), 1):
        if line.lstrip().startswith('```'):
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        for m in re.finditer(r'`([^`]+)`', line):
            yield lineno, m.group(1).strip()


def missing_names(root, doc, files, words, types):
    dirs = {os.path.dirname(f) + '/' for f in files}
    dirs |= {'/'.join(f.split('/')[:i]) + '/' for f in files for i in range(1, f.count('/') + 1)}
    missing = []
    for lineno, s in spans(doc):
        if TYPE.match(s):
            ok = s in types
        elif PATH.match(s) and ('/' in s or '.' in s):
            if s.endswith('/'):
                ok = any(d == s or d.endswith('/' + s) for d in dirs)
            else:
                ok = any(f == s or f.endswith('/' + s) for f in files)
        elif IDENT.match(s) and ('_' in s or s.endswith('()')):
            ok = s.rstrip('()') in words
        elif MEMBER.match(s):  # a field: `hostport.sec`, `engine_plan_in.tls`
            ok = all(part in words for part in s.split('.'))
        else:
            continue  # prose: options, commands, protocol words
        if not ok:
            missing.append((lineno, s))
    return missing


def self_test(root):
    """The check must catch a stale name of each kind and pass the live ones."""
    import tempfile
    files = tree(root)
    words, types = words_and_types(root, files)
    page = ('`mgpipe_kick` `struct engine` `core/net/mspipe.c` `core/engine/` `--crawl`\n'
            '`mgpipe_kick_gone` `struct engine_gone` `core/net/gone.c` `core/gone/`\n'
            '`hostport.sec` `hostport.zz_no_field`\n')
    with tempfile.NamedTemporaryFile('w', suffix='.md', delete=False) as f:
        f.write(page)
    try:
        miss = [s for _, s in missing_names(root, f.name, files, words, types)]
    finally:
        os.unlink(f.name)
    want = ['mgpipe_kick_gone', 'struct engine_gone', 'core/net/gone.c', 'core/gone/',
            'hostport.zz_no_field']
    if miss != want:
        print('self-test: flagged %r, want %r' % (miss, want), file=sys.stderr)
        return 1
    return 0


def main(argv):
    if len(argv) == 3 and argv[1] == '--self-test':
        return self_test(argv[2])
    if len(argv) < 3:
        print(__doc__.strip().splitlines()[-2], file=sys.stderr)
        return 2
    root = argv[1]
    files = tree(root)
    words, types = words_and_types(root, files)
    bad = 0
    checked = 0
    for doc in argv[2:]:
        miss = missing_names(root, doc, files, words, types)
        checked += sum(1 for _ in spans(doc))
        for lineno, s in miss:
            print('%s:%d: `%s` names nothing in the tree (renamed or gone? fix the page)'
                  % (os.path.relpath(doc, root), lineno, s))
        bad += len(miss)
    if checked == 0:
        print('no `code` spans found: wrong file?', file=sys.stderr)
        return 1
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
