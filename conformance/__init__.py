"""rlspec conformance: check any implementation against the reference.

``pytest conformance/ --impl=NAME`` or ``rlspec check NAME``; see ``conformance/adapters`` for the
adapter protocol and ``conformance/harness.py`` for how cases are drawn and compared.
"""
