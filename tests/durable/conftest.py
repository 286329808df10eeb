"""End-to-end tests of durable callbacks on AWS's local durable-function runner (``DurableFunctionTestRunner``).

The runner and the SDK need Python >= 3.11 (the ``test`` extra installs them there only); on 3.10 each module
skips with that reason (``pytest.importorskip``).
"""
