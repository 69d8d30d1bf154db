#!/usr/bin/env python3
"""Starts the fake API server (fake_kube.py, the same arguments): imported,
so that Python takes its compiled form from __pycache__. A script run by
name is compiled anew at every start, and fake_kube.py's compile took 0.1 s
of CPU of its 0.2 s start, which the specs pay some 1,500 times a CI run
(spec/run compiles it once, where Python may not write bytecode itself)."""
import fake_kube

fake_kube.main()
