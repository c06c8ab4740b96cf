# SPDX-License-Identifier: LGPL-2.1-or-later
"""The test registry of the tier-2 modules: zcusbtest.py keeps one, and each
module of tests (daemon_tests.py, datapath.py and those that join it) collects
its own and hands it over when zcusbtest.py registers it."""


def collector():
    """A dict of tests by name, and the decorator that fills it."""
    tests = {}

    def test(name):
        def deco(fn):
            tests[name] = fn
            return fn
        return deco
    return tests, test
