#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""The checks of ci/lava/validate (run by it, with lava_common and
lava_dispatcher on PYTHONPATH).

1. The test definition against LAVA's test definition schema, and a copy
   without its metadata format must be rejected (the schema is live).
2. The example job against LAVA's job schema, strict, which also checks
   the job's test definition entries; then lava-run --validate of it (its
   URLs pointed at local files) on a device rendered, as lava-server does,
   from lava-server's qemu.jinja2 with the job's context.
3. The test definition's run steps, in a run.sh laid out as LAVA's
   TestRunnerAction writes one (parameters, set -e, STARTRUN, the steps,
   ENDRUN), with Debian's lava-test-case and lava-common-functions on PATH,
   run here as root: every case of the KTAP it wrote must be signalled
   once (LAVA's own signal pattern) with its result, plus
   folio-batch-verdict, and the run must reach ENDRUN.
"""
import argparse
import copy
import os
import re
import shutil
import subprocess
import sys

import voluptuous
import yaml
from lava_common.schemas import validate as validate_job
from lava_common.schemas.test.testdef import validate as validate_testdef

failures = []
checks = [0]


def check(ok, what):
    """One TAP line per check, as tools/check.sh counts them."""
    checks[0] += 1
    print("%s %d %s" % ("ok" if ok else "not ok", checks[0], what))
    if not ok:
        failures.append(what)


def schema_ok(fn, data):
    try:
        fn(data)
        return None
    except voluptuous.Invalid as e:
        return "%s at %s" % (e.msg, "/".join(str(p) for p in e.path))


def shell_bin(shell, dest):
    """LAVA's test shell helpers, with the interpreter line the dispatcher
    puts first when it deploys them."""
    os.makedirs(dest)
    for name in ("lava-test-case", "lava-test-set", "lava-common-functions"):
        with open(os.path.join(shell, name)) as fh:
            text = fh.read()
        with open(os.path.join(dest, name), "w") as fh:
            fh.write("#!/bin/sh\n" + text)
        os.chmod(os.path.join(dest, name), 0o755)


SITE = "usr/lib/python3/dist-packages"


def lava_run_validate(args, job):
    """lava-run --validate: the dispatcher builds the job's pipeline for
    the device and runs every action's validate() (files exist, qemu is
    there, the test definitions are well formed), executing nothing."""
    from lava_common.schemas.device import validate as validate_device
    import jinja2.sandbox

    work = os.path.join(args.work, "lava-run")
    os.makedirs(work)
    templates = os.path.join(args.lava, "usr/share/lava-server/device-types")
    with open(os.path.join(work, "qemu-01.jinja2"), "w") as fh:
        fh.write("{% extends 'qemu.jinja2' %}\n{% set mac_addr = '52:54:00:12:34:59' %}\n"
                 "{% set memory = 2048 %}\n")
    env = jinja2.sandbox.SandboxedEnvironment(
        loader=jinja2.FileSystemLoader([work, templates]), autoescape=False, trim_blocks=True)
    device = env.get_template("qemu-01.jinja2").render(**job.get("context", {}))
    err = schema_ok(validate_device, yaml.safe_load(device))
    check(err is None, "device qemu-01 from lava-server's qemu.jinja2: LAVA's device schema%s"
          % (": " + err if err else ""))
    with open(os.path.join(work, "device.yaml"), "w") as fh:
        fh.write(device)
    # the job's downloads and repository, pointed at local stand-ins
    local = copy.deepcopy(job)
    for a in local["actions"]:
        for name, image in a.get("deploy", {}).get("images", {}).items():
            path = os.path.join(work, name + ".img")
            with open(path, "wb") as fh:
                fh.write(b"\0" * 4096)
            if image.get("compression") == "xz":
                subprocess.run(["xz", "-f", path], check=True)
                path += ".xz"
            image["url"] = "file://" + path
        for d in a.get("test", {}).get("definitions", []):
            d["repository"] = args.top
    # the dispatcher's scratch directory: under work, not /var/lib/lava
    with open(os.path.join(work, "dispatcher.yaml"), "w") as fh:
        fh.write("prefix: %s/tmp-\n" % work)
    rc, results, errors = lava_run(args, work, "job", local)
    check(rc == 0 and results.get("validate") == "pass",
          "lava-run --validate: the dispatcher accepts the job on a QEMU device (exit %d, %s)%s"
          % (rc, results.get("validate"), ": " + "; ".join(errors) if errors else ""))
    out = os.path.join(work, "job-out")
    # and it is not a rubber stamp: a kernel that is not there fails it
    gone = copy.deepcopy(local)
    for a in gone["actions"]:
        if "kernel" in a.get("deploy", {}).get("images", {}):
            a["deploy"]["images"]["kernel"]["url"] = "file://" + os.path.join(work, "no-such-kernel")
    rc, results, _ = lava_run(args, work, "gone", gone)
    check(rc != 0 and results.get("validate") == "fail",
          "lava-run --validate rejects the job when its kernel is missing (exit %d)" % rc)
    try:
        with open(os.path.join(out, "description.yaml")) as fh:
            desc = fh.read()
    except OSError:
        desc = ""
    check("lava-test-shell" in desc and "git-repo-action" in desc,
          "its pipeline clones the definition and runs a LAVA test shell")


def lava_run(args, work, name, job):
    """lava-run --validate of JOB: (exit code, {case: result}, [errors])."""
    with open(os.path.join(work, name + ".yaml"), "w") as fh:
        yaml.safe_dump(job, fh)
    out = os.path.join(work, name + "-out")
    os.makedirs(out)
    proc = subprocess.run(
        [sys.executable, os.path.join(args.lava, "usr/bin/lava-run"), "--validate",
         "--job-id", "1", "--output-dir", out, "--device", os.path.join(work, "device.yaml"),
         "--dispatcher", os.path.join(work, "dispatcher.yaml"), os.path.join(work, name + ".yaml")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
    results, errors = {}, []
    for line in proc.stdout.splitlines():
        try:
            rec = yaml.safe_load(line)
        except yaml.YAMLError:
            continue
        if not isinstance(rec, dict):
            continue
        msg = rec.get("msg")
        if rec.get("lvl") == "results" and isinstance(msg, dict):
            results[msg.get("case")] = msg.get("result")
            if msg.get("error_msg"):
                errors.append(msg["error_msg"])
        elif rec.get("lvl") == "error":
            errors.append(str(msg))
    return proc.returncode, results, errors


def run_sh(testdef, params, repo):
    """run.sh as lava_dispatcher's TestRunnerAction writes it."""
    lines = ["###default parameters from test definition###"]
    for k, v in (testdef.get("params") or {}).items():
        lines.append("%s='%s'" % (k, v or ""))
    lines += ["######", "###test parameters from job submission###"]
    for k, v in params.items():
        lines.append("%s='%s'" % (k, v or ""))
    lines += ["######", "set -e", "set -x", "export TESTRUN_ID=0_folio-batch",
              "cd %s" % repo, "UUID=1_1", "set +x",
              'echo "<LAVA_SIGNAL_STARTRUN $TESTRUN_ID $UUID>"', "set -x"]
    lines += [s for s in testdef["run"]["steps"] if s is not None]
    lines += ["set +x", 'echo "<LAVA_SIGNAL_ENDRUN $TESTRUN_ID $UUID>"']
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--top", required=True)
    ap.add_argument("--lava", required=True, help="the unpacked LAVA packages")
    ap.add_argument("--work", required=True)
    ap.add_argument("categories", nargs="+")
    args = ap.parse_args()
    lava = os.path.join(args.top, "ci", "lava")

    with open(os.path.join(lava, "folio-batch.yaml")) as fh:
        testdef = yaml.safe_load(fh)
    err = schema_ok(validate_testdef, testdef)
    check(err is None, "test definition folio-batch.yaml: LAVA's schema%s"
          % (": " + err if err else ""))
    broken = copy.deepcopy(testdef)
    del broken["metadata"]["format"]
    check(schema_ok(validate_testdef, broken) is not None,
          "the schema rejects the definition without metadata/format")

    with open(os.path.join(lava, "job-qemu.yaml")) as fh:
        job = yaml.safe_load(fh)
    err = schema_ok(lambda d: validate_job(d, strict=True), job)
    check(err is None, "job job-qemu.yaml: LAVA's job schema, strict%s"
          % (": " + err if err else ""))
    defs = [a["test"]["definitions"] for a in job["actions"] if "test" in a]
    check(any(d["path"] == "ci/lava/folio-batch.yaml" for ds in defs for d in ds),
          "the job runs ci/lava/folio-batch.yaml")
    lava_run_validate(args, job)

    # the run, as a LAVA test shell would do it
    bindir = os.path.join(args.work, "bin")
    shell_bin(os.path.join(args.lava, SITE, "lava_dispatcher", "lava_test_shell"), bindir)
    results = os.path.join(args.work, "results")
    out = os.path.join(args.work, "output")
    script = os.path.join(args.work, "run.sh")
    params = {"TESTS": " ".join(args.categories)}
    with open(script, "w") as fh:
        # the step's relative output directory lands in the work directory
        fh.write(run_sh(testdef, params, args.top).replace(
            "./folio-batch.sh ", "./folio-batch.sh -o %s " % out, 1))
    env = dict(os.environ, PATH=bindir + ":" + os.environ.get("PATH", ""),
               LAVA_RESULT_DIR=results)
    print("# running %s (TESTS=%s) as a LAVA test shell would" % (script, params["TESTS"]))
    proc = subprocess.run(["sh", script], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, errors="replace")
    signal = re.compile(r"<LAVA_SIGNAL_(\S+) ([^>]+)>")
    seen = {}
    ended = False
    for m in signal.finditer(proc.stdout):
        if m.group(1) == "ENDRUN":
            ended = True
        if m.group(1) != "TESTCASE":
            continue
        kv = dict(p.split("=", 1) for p in m.group(2).split() if "=" in p)
        seen.setdefault(kv.get("TEST_CASE_ID"), []).append(kv.get("RESULT"))
    check(proc.returncode == 0 and ended,
          "run.sh ran to ENDRUN under set -e (exit %d)" % proc.returncode)
    try:
        with open(os.path.join(out, "cases.txt")) as fh:
            cases = [line.split()[:2] for line in fh if line.strip()]
    except OSError:
        cases = []
    check(len(cases) > 0, "the run wrote %d KTAP cases" % len(cases))
    wrong = [c for c, r in cases if seen.get(c) != [r]]
    check(not wrong, "every KTAP case signalled once with its result%s"
          % (": not " + ", ".join(wrong[:5]) if wrong else ""))
    extra = sorted(set(seen) - {c for c, _ in cases} - {"folio-batch-verdict"})
    check(not extra, "no other case signalled%s" % (": " + ", ".join(extra[:5]) if extra else ""))
    check(len(seen.get("folio-batch-verdict", [])) == 1,
          "folio-batch-verdict signalled once (%s)" % seen.get("folio-batch-verdict"))
    stored = sum(os.path.exists(os.path.join(results, "results", c, "result")) for c, _ in cases)
    check(stored == len(cases), "lava-test-case stored %d of %d results" % (stored, len(cases)))
    if failures:
        print("\n".join("# " + line for line in proc.stdout.splitlines()[-20:]))
    print("# lava/validate: %d checks failed" % len(failures) if failures
          else "# lava/validate: valid (%d cases reported)" % len(cases))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
