#!/usr/bin/python3
"""dnf as the oracle: what `dnf install` takes for each case, on a fresh installroot.

Reads JSON on stdin:
  {"root": DIR, "repos": [[id, baseurl], ...], "weak": bool, "cases": [[spec, ...], ...],
   "modules": ["name:stream", ...]}
and prints one JSON line per case: {"ok": [nevra, ...]} or {"err": text}.

A spec is what `dnf install` takes (a name, a capability, a file), or "any:" and paths joined by
"|": any package owning any of them (a command found on PATH), as dnf's own selector of that
package set. dnf runs as EL's dnf.conf has it: best=True, module_platform_id=platform:el9,
install_weak_deps as asked. One sack serves every case (base.reset between them).
"""
import json
import os
import sys

import dnf
import dnf.exceptions
import dnf.module.module_base
import dnf.selector


def main():
    req = json.load(sys.stdin)
    base = dnf.Base()
    conf = base.conf
    root = req["root"]
    conf.installroot = root
    conf.cachedir = os.path.join(root, "cache")
    conf.persistdir = os.path.join(root, "persist")
    conf.logdir = os.path.join(root, "log")
    os.makedirs(conf.logdir, exist_ok=True)
    conf.reposdir = []
    conf.best = True
    conf.install_weak_deps = bool(req["weak"])
    conf.module_platform_id = "platform:el9"
    conf.gpgcheck = False
    conf.substitutions["releasever"] = "9"
    conf.substitutions["basearch"] = "x86_64"
    conf.arch = "x86_64"
    conf.basearch = "x86_64"
    for rid, url in req["repos"]:
        base.repos.add_new_repo(rid, conf, baseurl=[url])
    base.fill_sack(load_system_repo=False)
    if req.get("modules"):
        dnf.module.module_base.ModuleBase(base).enable(req["modules"])
        base._moduleContainer.save()
        base.fill_sack(load_system_repo=False)
    for specs in req["cases"]:
        base.reset(goal=True)
        try:
            for spec in specs:
                if spec.startswith("any:"):
                    paths = spec[4:].split("|")
                    q = base.sack.query().available().filterm(file=paths)
                    if not q:
                        raise dnf.exceptions.MarkingError("no package has " + spec)
                    sltr = dnf.selector.Selector(base.sack).set(pkg=q)
                    base._goal.install(select=sltr, optional=False)
                else:
                    base.install(spec)
            base.resolve()
            out = sorted(
                "%s-%s.%s" % (p.name, p.evr, p.arch) for p in base.transaction.install_set
            )
            print(json.dumps({"ok": out}), flush=True)
        except dnf.exceptions.Error as e:
            print(json.dumps({"err": str(e)}), flush=True)


if __name__ == "__main__":
    main()
