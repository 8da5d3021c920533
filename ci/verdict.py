#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Judge a run of the suite against the expectations for a kernel version.

    verdict.py --ktap FILE [--kernel VERSION] [--expectations FILE]
               [--junit OUT.xml] [--name LABEL]

FILE is the KTAP that run_vmtests.sh (or the kselftest runner, one level
deeper) printed. Every leaf test case is named "<category>:<case>", e.g.
"folio_builder:folio.64kB.aligned", and judged against the first matching
entry of the expectations file (format: see ci/expectations):

  PASS                      pass
  PASS, expected FAIL/SKIP  pass, reported as an unexpected pass
  FAIL, expected FAIL       known failure (reported, counted as skipped)
  FAIL otherwise            failure
  SKIP, expected SKIP       expected skip (counted as skipped)
  SKIP otherwise            failure: a kernel that breaks a precondition
                            must not pass quietly
  XFAIL / XPASS             known failure / unexpected pass

A program that crashed or was cut off (fewer results than its plan, no plan,
or "not ok" with no failing case under it) gives a failing case
"<category>:<program>"; a file without results gives "top:run".

The last line is "verdict: N passed, N failed, N skipped" (passed: passes
and unexpected passes; failed: failures and unexpected skips; skipped:
expected skips and known failures). Exit 0 when nothing failed, 1 when
something did, 2 on bad usage or an unreadable/malformed input file.
"""
import argparse
import gzip
import fnmatch
import os
import re
import sys
import xml.etree.ElementTree as ET

ME = "verdict.py"


class BadInput(Exception):
    """Bad usage or a bad input file: exit 2 with this one line."""


# ---- kernel versions and version ranges --------------------------------------

_KVER_RE = re.compile(r"^\s*(\d+)\.(\d+)(?:\.(\d+))?")
_BOUND = r"\d+\.\d+(?:\.\d+)?"
_TERM_OP_RE = re.compile(r"^(<=|>=|==|<|>|=)?\s*(" + _BOUND + r")$")
_TERM_SPAN_RE = re.compile(r"^(" + _BOUND + r")\s*\.\.\s*(" + _BOUND + r")$")
_TERM_CONFIG_RE = re.compile(r"^(!?)(CONFIG_[A-Z0-9_]+)$")


def parse_kernel_version(text):
    """(X, Y, Z) from "6.12.57+deb13-amd64", "7.2.13-amd64", "6.8"."""
    m = _KVER_RE.match(text or "")
    if not m:
        raise ValueError("not a kernel version: %r" % text)
    return tuple(int(g or 0) for g in m.groups())


def _bound(text):
    return tuple(int(p) for p in text.split("."))


def _cmp(kver, bound):
    """Compare a kernel version with a bound on the bound's components only:
    6.12.57 equals 6.12, is above 6.12.5 and below 6.13."""
    k = tuple(kver[:len(bound)])
    return (k > bound) - (k < bound)


class VersionRange:
    """'*', '<6.19', '<=6.12', '>=6.8', '>6.1', '=6.12', '6.12' (any 6.12.x),
    '6.1..6.12' (both ends inclusive), or a comma-joined conjunction of these
    ('>=6.8,<6.19'). Bounds are X.Y or X.Y.Z; only the components given are
    compared. A term CONFIG_X (built in or module) or !CONFIG_X (not set)
    holds only when the kernel's config is known."""

    def __init__(self, text):
        self.text = text
        self.terms = []
        if not text:
            raise ValueError("empty version range")
        for raw in text.split(","):
            term = raw.strip()
            if term == "*":
                self.terms.append(("*",))
                continue
            m = _TERM_CONFIG_RE.match(term)
            if m:
                self.terms.append(("config", m.group(1) != "!", m.group(2)))
                continue
            m = _TERM_SPAN_RE.match(term)
            if m:
                lo, hi = _bound(m.group(1)), _bound(m.group(2))
                if _cmp(lo + (0,) * (3 - len(lo)), hi) > 0:
                    raise ValueError("empty version range %r" % term)
                self.terms.append(("..", lo, hi))
                continue
            m = _TERM_OP_RE.match(term)
            if not m:
                raise ValueError(
                    "bad version range %r (use *, <X.Y, <=X.Y, >X.Y, >=X.Y, "
                    "X.Y..X.Y, joined by commas)" % (term or text))
            self.terms.append((m.group(1) or "=", _bound(m.group(2))))

    def matches(self, kver, config=None):
        for term in self.terms:
            op = term[0]
            if op == "*":
                continue
            if op == "config":
                # An unknown config matches no condition: strict by default.
                if config is None or (term[2] in config) != term[1]:
                    return False
                continue
            if op == "..":
                ok = _cmp(kver, term[1]) >= 0 and _cmp(kver, term[2]) <= 0
            else:
                c = _cmp(kver, term[1])
                ok = {"<": c < 0, "<=": c <= 0, ">": c > 0, ">=": c >= 0,
                      "=": c == 0, "==": c == 0}[op]
            if not ok:
                return False
        return True

    def __str__(self):
        return self.text


# ---- expectations ---------------------------------------------------------------

KINDS = ("FAIL", "SKIP")


class Expectation:
    def __init__(self, glob, vrange, kind, reason, where):
        self.glob = glob
        self.range = vrange
        self.kind = kind
        self.reason = reason
        self.where = where

    def matches(self, case_id, kver, config=None):
        return (fnmatch.fnmatchcase(case_id, self.glob) and
                self.range.matches(kver, config))

    def describe(self):
        where = "every kernel" if self.range.text == "*" else self.range.text
        return "expected %s on %s: %s" % (self.kind, where, self.reason)


def parse_expectations(text, name="expectations"):
    """Entries of an expectations file; BadInput naming file:line on the
    first malformed one."""
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        where = "%s:%d" % (name, n)
        f = s.split(None, 3)
        if len(f) < 3:
            raise BadInput("%s: want '<test-glob> <version-range> <FAIL|SKIP> "
                           "<reason>', got %r" % (where, s))
        if f[2].upper() not in KINDS:
            raise BadInput("%s: %r is not FAIL or SKIP" % (where, f[2]))
        if len(f) < 4 or not f[3].strip():
            raise BadInput("%s: %s %s %s has no reason (every entry needs one)"
                           % (where, f[0], f[1], f[2].upper()))
        try:
            vrange = VersionRange(f[1])
        except ValueError as e:
            raise BadInput("%s: %s" % (where, e))
        out.append(Expectation(f[0], vrange, f[2].upper(), f[3].strip(), where))
    return out


def load_expectations(path):
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except (OSError, UnicodeDecodeError) as e:
        raise BadInput("cannot read expectations %s: %s" % (path, _strerror(e)))
    return parse_expectations(text, path)


def find_expectation(expectations, case_id, kver, config=None):
    for e in expectations:
        if e.matches(case_id, kver, config):
            return e
    return None


# ---- KTAP -------------------------------------------------------------------------

PASS, FAIL, SKIP, XFAIL, XPASS = "PASS", "FAIL", "SKIP", "XFAIL", "XPASS"

_HEADER_RE = re.compile(r"^K?TAP version \d+\s*$")
_PLAN_RE = re.compile(r"^1\.\.(\d+)\s*(?:#\s*(.*?)\s*)?$")
_RESULT_RE = re.compile(r"^(not ok|ok)(?=\s|$)\s*(\d+)?\s*(?:-\s+)?(.*)$")
_INDENT_RE = re.compile(r"^( {2,}|\t+)")
_RUN_RE = re.compile(r"^RUN\s+(\S+)\s+\.\.\.\s*$")
_HARNESS_END_RE = re.compile(r"^(OK|FAIL)\s+\S+\s*$")
_HARNESS_SKIP_RE = re.compile(r"^SKIP\s+(.*)$")
_SUMMARY_RE = re.compile(r"^(Totals: |\d+ passed, \d+ failed, \d+ skipped\s*$)")
_SELFTESTS_RE = re.compile(r"^selftests:\s*(\S+):\s*(\S+)\s*$")
_SUBTEST_RE = re.compile(r"^# Subtest:\s*(.*?)\s*$")
_NOISE_RE = re.compile(r"^(Starting \d+ tests|PASSED: |FAILED: |Totals: |"
                       r"\S+: Test failed$|selftests: |timeout set to )")

KEEP_DIAGS = 40      # diagnostic lines kept per result
MESSAGE_LINES = 4    # of which a failure message shows the last few


class Result:
    def __init__(self, ok, number, name, directive, diags):
        self.ok = ok
        self.number = number
        self.name = name
        self.directive = directive       # text after '#', or ""
        self.diags = diags               # diagnostic lines before it
        self.skip_hint = None            # harness "SKIP  reason", if any
        self.child = None                # nested Doc whose verdict this is
        self.missing = False             # no result line: run cut off
        self.closed_by = None            # the line that ended a cut-off run

    @property
    def kind(self):
        word = self.directive.split(None, 1)[0].upper() if self.directive else ""
        if word in ("SKIP", "SKIPPED"):
            return SKIP
        if word in ("TODO", "XFAIL", "XPASS"):
            return word
        return None

    @property
    def reason(self):
        parts = self.directive.split(None, 1)
        return parts[1].strip() if self.kind and len(parts) > 1 else ""


class Doc:
    """One KTAP document: the top level or one nested under a prefix."""

    def __init__(self, prefix, parent=None):
        self.prefix = prefix
        self.parent = parent
        self.header = False
        self.plan = None
        self.plan_directive = None
        self.results = []
        self.diags = []              # since the last result
        self.child = None            # nested doc opened since the last result
        self.pending_name = None     # "selftests: cat: prog": the next child
        self.own_name = None         # "# Subtest: name" (KTAP v1)
        self.run_name = None         # harness RUN without a result yet
        self.skip_hint = None
        self.summary = False         # "Totals:" / "N passed, N failed, ..."
        self.bail_out = None
        self.last_diags = []         # the last lines of output, any kind

    def note(self, text):
        self.last_diags.append(text)
        del self.last_diags[:-MESSAGE_LINES]


def _strerror(e):
    return e.strerror if isinstance(e, OSError) and e.strerror else str(e)


def _child_content(rest):
    """(marker, content) when rest is a deeper-nested line, else None."""
    if rest.startswith("# "):
        return "# ", rest[2:]
    m = _INDENT_RE.match(rest)
    if m:
        return m.group(1), rest[len(m.group(1)):]
    return None


def _opens_child(marker, content):
    if _HEADER_RE.match(content) or _PLAN_RE.match(content) or _RESULT_RE.match(content):
        return True
    # KTAP v1 / KUnit: an indented "# Subtest: name" starts a subtest
    return not marker.startswith("#") and bool(_SUBTEST_RE.match(content))


class Parser:
    def __init__(self):
        self.roots = [Doc("")]
        self.stack = [self.roots[0]]

    def feed(self, line):
        line = line.rstrip("\r\n")
        for doc in reversed(self.stack):
            if line.startswith(doc.prefix):
                rest = line[len(doc.prefix):]
                break
            if doc.prefix and line.rstrip() == doc.prefix.rstrip():
                rest = ""
                break
        self._handle(doc, rest)

    def _handle(self, doc, rest):
        if _HEADER_RE.match(rest):
            if doc.parent is None and (doc.results or doc.plan is not None):
                self._finish_root(doc, "a new KTAP header")
                doc = Doc("")
                self.roots.append(doc)
                self.stack = [doc]
            if not doc.results and doc.plan is None:
                doc.header = True
                return
        m = _PLAN_RE.match(rest)
        if m and doc.plan is None:
            doc.plan = int(m.group(1))
            doc.plan_directive = m.group(2)
            return
        m = _RESULT_RE.match(rest)
        if m:
            self._result(doc, m, rest)
            return
        nested = _child_content(rest)
        if nested and self.stack[-1] is doc and _opens_child(*nested):
            marker, content = nested
            if doc.child is not None:
                # a second nested document before doc's result: the first
                # one had no result line of its own
                self._pending(doc, doc.child, "another nested document")
            child = Doc(doc.prefix + marker, doc)
            doc.child = child
            self.stack.append(child)
            self._handle(child, content)
            return
        self._diag(doc, rest)

    def _diag(self, doc, rest):
        text = rest.strip()
        if text.startswith("#"):
            text = text[1:].strip()
        if not text:
            return
        doc.note(text)
        m = _RUN_RE.match(text)
        if m:
            doc.run_name = m.group(1)
            doc.skip_hint = None
            doc.diags = []
            return
        if _HARNESS_END_RE.match(text):
            return
        m = _HARNESS_SKIP_RE.match(text)
        if m:
            doc.skip_hint = m.group(1).strip()
            return
        if _SUMMARY_RE.match(text):
            doc.summary = True
        if text.startswith("Bail out!"):
            doc.bail_out = text
        if _SELFTESTS_RE.match(text):
            doc.pending_name = text
        elif text.startswith("Subtest:") and not doc.results:
            doc.own_name = text[len("Subtest:"):].strip()
        doc.diags.append(text)
        del doc.diags[:-KEEP_DIAGS]

    def _result(self, doc, m, rest):
        ok = m.group(1) == "ok"
        number = int(m.group(2)) if m.group(2) else len(doc.results) + 1
        desc = m.group(3)
        parts = re.split(r"(?<!\\)#", desc, maxsplit=1)
        name = parts[0].strip().replace("\\#", "#")
        directive = parts[1].strip() if len(parts) > 1 else ""
        r = Result(ok, number, name, directive, doc.diags)
        r.skip_hint = doc.skip_hint
        self._close_above(doc, "'%s'" % rest.strip())
        r.child, doc.child = doc.child, None
        doc.results.append(r)
        doc.diags = []
        doc.pending_name = doc.run_name = doc.skip_hint = None

    def _pending(self, doc, child, closed_by):
        """child (or nothing, when child is None) ran under doc without a
        result line in doc."""
        name = doc.pending_name or (child.own_name if child else None) or ""
        r = Result(False, len(doc.results) + 1, _pending_result_name(name), "", doc.diags)
        r.child = child
        r.missing = True
        r.closed_by = closed_by
        doc.results.append(r)
        doc.diags = []
        doc.child = None
        doc.pending_name = None

    def _close_above(self, doc, closed_by):
        """Close every document nested deeper than doc."""
        while self.stack[-1] is not doc:
            inner = self.stack.pop()
            self._close_open_run(inner, closed_by)
            if inner.parent is not doc:
                self._pending(inner.parent, inner, closed_by)

    def _close_open_run(self, doc, closed_by):
        # a program announced ("selftests: cat: prog") but with no output
        if doc.child is None and doc.pending_name and _SELFTESTS_RE.match(doc.pending_name):
            self._pending(doc, None, closed_by)

    def _finish_root(self, root, closed_by):
        self._close_above(root, closed_by)
        self._close_open_run(root, closed_by)
        if root.child is not None:
            self._pending(root, root.child, closed_by)

    def finish(self):
        self._finish_root(self.stack[0], "the end of the file")
        return self.roots


def _pending_result_name(name):
    m = _SELFTESTS_RE.match(name)
    if m:
        return name if m.group(2).startswith("ksft_") else "%s:%s" % m.groups()
    return name


def parse_ktap(text):
    p = Parser()
    for line in text.splitlines():
        p.feed(line)
    return p.finish()


# ---- leaf cases --------------------------------------------------------------------

class Case:
    def __init__(self, category, name, status, message, synthetic=False):
        self.category = category
        self.name = name
        self.status = status
        self.message = message
        self.synthetic = synthetic
        self.expectation = None
        self.outcome = None
        self.line = None

    @property
    def id(self):
        return "%s:%s" % (self.category, self.name) if self.category else self.name


def _name_context(name):
    """(category, program, strong) named by a result line, or None.
    "folio_builder:folio_builder" is strong: it names the category; the
    kselftest runner's "selftests: mm: ksft_folio_builder.sh" and KUnit
    suite names are weak: used when nothing nested names one."""
    m = _SELFTESTS_RE.match(name)
    if m:
        cat, prog = m.groups()
        k = re.match(r"^ksft_(.+)\.sh$", prog)
        return (k.group(1), prog, False) if k else (cat, prog, True)
    m = re.match(r"^([^\s:#]+):([^\s:#]+)$", name)
    if m:
        return (m.group(1), m.group(2), True)
    if re.match(r"^[^\s:#]+$", name):
        return (name, name, False)
    return None


def _message(diags, fallback):
    useful = [d for d in diags if not _NOISE_RE.match(d) and not _RUN_RE.match(d)
              and not _HARNESS_END_RE.match(d)]
    if not useful:
        useful = [d for d in diags if re.match(r"^\S+: Test (failed|terminated)", d)]
    msg = " | ".join(useful[-MESSAGE_LINES:])
    return msg or fallback


def _leaf(ctx, r):
    kind = r.kind
    if kind == SKIP:
        status = SKIP
    elif kind == "TODO":
        status = XFAIL if not r.ok else XPASS
    elif kind in (XFAIL, XPASS):
        status = kind
    else:
        status = PASS if r.ok else FAIL
    if status == SKIP:
        msg = r.reason or r.skip_hint or "no reason given"
    elif status == FAIL:
        msg = _message(r.diags, r.directive or "not ok")
        if r.directive and r.directive not in msg:
            msg = "%s (%s)" % (msg, r.directive)
    elif status in (XFAIL, XPASS):
        msg = r.reason or _message(r.diags, status)
    else:
        msg = ""
    name = r.name or "test%d" % r.number
    own = _name_context(name)
    if own and own[2]:
        # "category:program" names itself, at any depth
        return Case(own[0], own[1], status, msg)
    if ctx:
        return Case(ctx[0], name, status, msg)
    if own and own[1] != own[0]:
        return Case(own[0], own[1], status, msg)
    return Case("", name, status, msg)


def _synthetic(ctx, r, message):
    own = _name_context(r.name) if r.name else None
    if own:
        cat, prog = own[0], own[1]
    elif ctx:
        cat, prog = ctx[0], r.name or "test%d" % r.number
    else:
        cat, prog = "top", r.name or "test%d" % r.number
    return Case(cat, prog, FAIL, message, synthetic=True)


def _incomplete(doc):
    """What is missing from a document, or None when it is complete."""
    n = len(doc.results)
    problems = []
    if doc.plan is None:
        problems.append("%d results, no plan" % n if n else "no plan, no results")
    elif doc.plan_directive and n == 0:
        return None
    elif n < doc.plan:
        problems.append("%d of %d results" % (n, doc.plan))
    elif n > doc.plan:
        problems.append("%d results for a plan of %d" % (n, doc.plan))
    else:
        return None
    if not doc.summary:
        problems.append("no Totals")
    if doc.run_name:
        problems.append("%s started, no result" % doc.run_name)
    if doc.bail_out:
        problems.append(doc.bail_out)
    return ", ".join(problems)


def _last_output(doc, r=None):
    lines = list(doc.last_diags)
    if r is not None:
        lines += [d for d in r.diags[-2:] if not _NOISE_RE.match(d)]
    lines = [l for l in lines if not (_RUN_RE.match(l) or _HARNESS_END_RE.match(l)
                                      or _NOISE_RE.match(l) or _SUMMARY_RE.match(l))]
    return " | ".join(lines[-3:])


def _walk(doc, ctx, out):
    for r in doc.results:
        own = _name_context(r.name) if r.name else None
        if own and (own[2] or ctx is None or not ctx[2]):
            sub = own
        else:
            sub = ctx
        if r.child is None:
            if r.missing:
                out.append(_synthetic(sub, r, "cut off: no output (ended by %s)"
                                      % r.closed_by))
            else:
                out.append(_leaf(ctx, r))
            continue
        first = len(out)
        _walk(r.child, sub, out)
        leaves = out[first:]
        missing = _incomplete(r.child)
        if missing:
            word = "cut off" if r.missing else "crashed"
            msg = "%s: %s" % (word, missing)
            if r.missing:
                msg += " (ended by %s)" % r.closed_by
            elif r.directive:
                msg += " (%s)" % r.directive
            last = _last_output(r.child)
            if last:
                msg += "; last output: " + last
            out.append(_synthetic(sub, r, msg))
        elif (not r.missing and not r.ok and r.kind not in (SKIP, "TODO")
              and not any(c.status == FAIL for c in leaves)):
            why = _message(r.diags, "") or _last_output(r.child)
            msg = "not ok with no failing case under it"
            if r.directive:
                msg += " (%s)" % r.directive
            if why:
                msg += ": " + why
            out.append(_synthetic(sub, r, msg))
        elif not leaves and not r.missing:
            leaf = _leaf(ctx, r)
            if leaf.status == SKIP and leaf.message == "no reason given" and r.child.plan_directive:
                leaf.message = re.sub(r"^(?i:skip)\s*", "", r.child.plan_directive) or leaf.message
            out.append(leaf)


def cases_from_ktap(text):
    """The leaf cases of a KTAP text, crashed and cut-off runs included as
    synthetic failing cases ("top:run" for the top level itself)."""
    out = []
    for root in parse_ktap(text):
        _walk(root, None, out)
        missing = _incomplete(root)
        if missing:
            if not root.results and root.plan is None:
                msg = "no KTAP results" + ("" if root.header else " (no KTAP header)")
            else:
                msg = "cut off: " + missing
            last = _last_output(root)
            if last:
                msg += "; last output: " + last
            out.append(Case("top", "run", FAIL, msg, synthetic=True))
    return out


# ---- verdict -------------------------------------------------------------------------

PASSED, UNEXPECTED_PASS, KNOWN_FAILURE = "pass", "unexpected pass", "known failure"
FAILED, UNEXPECTED_SKIP, EXPECTED_SKIP = "failure", "unexpected skip", "expected skip"


def load_config(path):
    """The options set (y or m) in a kernel config file, plain or gzip."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        text = data.decode("utf-8", "replace")
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise BadInput("cannot read kernel config %s: %s" % (path, _strerror(e)))
    return {m.group(1) for m in re.finditer(r"^(CONFIG_\w+)=[ym]\s*$", text, re.M)}


def judge(cases, expectations, kver, config=None):
    """Give every case its outcome and its report line (None for plain
    passes and expected skips)."""
    for c in cases:
        e = find_expectation(expectations, c.id, kver, config)
        c.expectation = e
        exp = " (%s)" % e.describe() if e else ""
        if c.status == PASS:
            if e:
                c.outcome, c.line = UNEXPECTED_PASS, "unexpected pass: %s%s" % (c.id, exp)
            else:
                c.outcome = PASSED
        elif c.status == XPASS:
            c.outcome = UNEXPECTED_PASS
            c.line = "unexpected pass: %s (harness XPASS%s)%s" % (
                c.id, ": " + c.message if c.message and c.message != XPASS else "", exp)
        elif c.status == XFAIL:
            c.outcome = KNOWN_FAILURE
            c.line = "known failure: %s: XFAIL: %s%s" % (c.id, c.message, exp)
        elif c.status == FAIL:
            if e and e.kind == "FAIL":
                c.outcome = KNOWN_FAILURE
                c.line = "known failure: %s: %s%s" % (c.id, c.message, exp)
            else:
                c.outcome = FAILED
                c.line = "FAIL %s: %s%s" % (c.id, c.message, exp)
        else:  # SKIP
            if e and e.kind == "SKIP":
                c.outcome = EXPECTED_SKIP
            else:
                c.outcome = UNEXPECTED_SKIP
                c.line = "FAIL %s: unexpected SKIP: %s%s" % (c.id, c.message, exp)
    return cases


def counts(cases):
    n = {k: 0 for k in (PASSED, UNEXPECTED_PASS, KNOWN_FAILURE, FAILED,
                        UNEXPECTED_SKIP, EXPECTED_SKIP)}
    for c in cases:
        n[c.outcome] += 1
    return {
        "passed": n[PASSED] + n[UNEXPECTED_PASS],
        "failed": n[FAILED] + n[UNEXPECTED_SKIP],
        "skipped": n[EXPECTED_SKIP] + n[KNOWN_FAILURE],
        "known": n[KNOWN_FAILURE],
        "expected_skips": n[EXPECTED_SKIP],
        "unexpected_passes": n[UNEXPECTED_PASS],
    }


def report(cases, kernel, expectations_name, label=None):
    """The human lines: known failures and unexpected passes first, then
    the failures (nearest the verdict), then the two summary lines."""
    lines = [c.line for c in cases if c.line and c.outcome in (KNOWN_FAILURE, UNEXPECTED_PASS)]
    lines += [c.line for c in cases if c.line and c.outcome in (FAILED, UNEXPECTED_SKIP)]
    n = counts(cases)
    lines.append("known failures: %d, expected skips: %d, unexpected passes: %d "
                 "(%skernel %s, expectations %s)"
                 % (n["known"], n["expected_skips"], n["unexpected_passes"],
                    label + ": " if label else "", kernel, expectations_name))
    lines.append("verdict: %d passed, %d failed, %d skipped"
                 % (n["passed"], n["failed"], n["skipped"]))
    return lines


_XML_BAD = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _x(text):
    return _XML_BAD.sub("?", text or "")


def junit(cases, kernel, expectations_name, ktap_name, label=None):
    """An ElementTree of JUnit XML: testsuites > testsuite per category >
    testcase."""
    n = counts(cases)
    top = ET.Element("testsuites", {
        "name": _x(label or "verdict"), "tests": str(len(cases)),
        "failures": str(n["failed"]), "errors": "0", "skipped": str(n["skipped"])})
    suites = {}
    for c in cases:
        cat = c.category or "ktap"
        if cat not in suites:
            s = ET.SubElement(top, "testsuite", {"name": _x(cat)})
            props = ET.SubElement(s, "properties")
            for k, v in (("kernel", kernel), ("expectations", expectations_name),
                         ("ktap", ktap_name), ("label", label or "")):
                ET.SubElement(props, "property", {"name": k, "value": _x(v)})
            suites[cat] = [s, 0, 0, 0]
        entry = suites[cat]
        entry[1] += 1
        tc = ET.SubElement(entry[0], "testcase", {"name": _x(c.name), "classname": _x(cat)})
        if c.outcome in (FAILED, UNEXPECTED_SKIP):
            entry[2] += 1
            msg = c.line.split(": ", 1)[1] if ": " in c.line else c.line
            f = ET.SubElement(tc, "failure", {
                "message": _x(msg),
                "type": "unexpected SKIP" if c.outcome == UNEXPECTED_SKIP else "FAIL"})
            f.text = _x(c.line)
        elif c.outcome in (EXPECTED_SKIP, KNOWN_FAILURE):
            entry[3] += 1
            e = c.expectation
            if c.outcome == EXPECTED_SKIP:
                msg = "expected SKIP: %s (%s: %s)" % (c.message, e.range, e.reason)
            else:
                msg = c.line
            ET.SubElement(tc, "skipped", {"message": _x(msg)})
        elif c.outcome == UNEXPECTED_PASS:
            ET.SubElement(tc, "system-out").text = _x(c.line)
    for s, tests, failures, skipped in suites.values():
        s.set("tests", str(tests))
        s.set("failures", str(failures))
        s.set("errors", "0")
        s.set("skipped", str(skipped))
    tree = ET.ElementTree(top)
    if hasattr(ET, "indent"):
        ET.indent(tree)
    return tree


# ---- command line ----------------------------------------------------------------------

# KTAP status -> LAVA result (LAVA knows pass, fail, skip and unknown); an
# XFAIL is a pass the test itself expected, as the kselftest runner counts it.
_LAVA_RESULT = {PASS: "pass", XFAIL: "pass", FAIL: "fail", XPASS: "fail", SKIP: "skip"}


def case_lines(cases):
    """ "<id> <lava result> <outcome>" per case: the id with every character
    LAVA does not take in a test case id ([-_a-zA-Z0-9.]) made '_'."""
    out = []
    for c in cases:
        cid = re.sub(r"[^-_a-zA-Z0-9.]", "_", c.id.replace(":", "."))
        out.append("%s %s %s\n" % (cid, _LAVA_RESULT.get(c.status, "unknown"),
                                   c.outcome.replace(" ", "-")))
    return "".join(out)


class _Args(argparse.ArgumentParser):
    def error(self, message):
        raise BadInput("%s (see --help)" % message)


def _display(path, given):
    """A path given on the command line as given; the default one relative
    to the current directory when it is under it."""
    if given:
        return path
    rel = os.path.relpath(path)
    return path if rel.startswith("..") or os.getcwd() == "/" else rel


def main(argv=None):
    here = os.path.dirname(os.path.abspath(__file__))
    ap = _Args(prog=ME, description="Judge a KTAP run against ci/expectations.",
               epilog="Exit: 0 nothing failed, 1 failures, 2 bad usage or input.")
    ap.add_argument("--ktap", required=True, metavar="FILE",
                    help="run_vmtests.sh / kselftest KTAP output ('-': stdin)")
    ap.add_argument("--kernel", metavar="VERSION",
                    help="kernel the run was on (default: uname -r)")
    ap.add_argument("--expectations", metavar="FILE",
                    help="expectations file (default: ci/expectations)")
    ap.add_argument("--config", metavar="FILE",
                    help="the kernel's config, plain or gzip (default, when "
                    "--kernel is not given: /proc/config.gz if readable)")
    ap.add_argument("--junit", metavar="OUT.xml", help="also write JUnit XML here")
    ap.add_argument("--name", metavar="LABEL", help='label of this run, e.g. "host", "vm 7.2"')
    ap.add_argument("--cases", metavar="OUT.txt",
                    help="also write every case here, one line each: its id, "
                    "its LAVA result (pass/fail/skip) and its outcome")
    try:
        args = ap.parse_args(argv)
        kernel = args.kernel if args.kernel is not None else os.uname().release
        if not kernel.strip() or len(kernel.split()) != 1:
            raise BadInput("--kernel %r is not one kernel version" % kernel)
        kernel = kernel.strip()
        try:
            kver = parse_kernel_version(kernel)
        except ValueError as e:
            raise BadInput("--kernel: %s" % e)
        config = None
        if args.config:
            config = load_config(args.config)
        elif args.kernel is None and os.access("/proc/config.gz", os.R_OK):
            config = load_config("/proc/config.gz")
        exp_path = args.expectations or os.path.join(here, "expectations")
        expectations = load_expectations(exp_path)
        try:
            if args.ktap == "-":
                text = sys.stdin.read()
            else:
                with open(args.ktap, encoding="utf-8", errors="replace") as fh:
                    text = fh.read()
        except OSError as e:
            raise BadInput("cannot read KTAP %s: %s" % (args.ktap, _strerror(e)))
        if "\0" in text:
            raise BadInput("%s is not a text file" % args.ktap)
        cases = judge(cases_from_ktap(text), expectations, kver, config)
        exp_name = _display(exp_path, args.expectations is not None)
        lines = report(cases, kernel, exp_name, args.name)
        if args.junit:
            tree = junit(cases, kernel, exp_name, args.ktap, args.name)
            try:
                tree.write(args.junit, encoding="utf-8", xml_declaration=True)
            except OSError as e:
                raise BadInput("cannot write %s: %s" % (args.junit, _strerror(e)))
        if args.cases:
            try:
                with open(args.cases, "w", encoding="utf-8") as fh:
                    fh.write(case_lines(cases))
            except OSError as e:
                raise BadInput("cannot write %s: %s" % (args.cases, _strerror(e)))
    except BadInput as e:
        print("%s: %s" % (ME, e), file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0 if counts(cases)["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
