#!/usr/bin/env python3
"""Puts one benchmark's section (its text on stdin) into docs/benchmarks.md between `<!-- MARKER -->` and
`<!-- /MARKER -->`: the last run's section is replaced, a new one appended. Run from the source root.

Usage: scripts/bench-section.py MARKER < section.md
"""
import re
import sys

key = sys.argv[1]
section = '<!-- %s -->\n%s\n<!-- /%s -->' % (key, sys.stdin.read().rstrip('\n'), key)
path = 'docs/benchmarks.md'
text = open(path).read()
pat = re.compile(r'<!-- %s -->.*?<!-- /%s -->' % (re.escape(key), re.escape(key)), re.S)
text = pat.sub(lambda m: section, text) if pat.search(text) else text.rstrip('\n') + '\n\n' + section + '\n'
open(path, 'w').write(text)
print('updated %s (%s)' % (path, key))
