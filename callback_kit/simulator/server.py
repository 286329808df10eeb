"""moto as a server on the loopback interface, with the Step Functions simulator on, for code in other processes.

:class:`~callback_kit.simulator.LocalStepFunctions` mocks boto3 inside this process; a subprocess (the installed
``callback-kit`` command, a function built by ``sam build``) needs an endpoint instead. :func:`moto_server`
starts one and, on exit, stops it and puts back what it changed: ``$MOTO_PORT`` and moto's process-wide
configuration. The configuration matters: the threaded server shares it with any in-process mock, and leaving the
simulator switched on would make later mocks answer ``InvalidToken`` to tokens they used to accept.

While it runs, the server answers callbacks as :class:`~callback_kit.simulator.LocalStepFunctions` does (see
:mod:`~callback_kit.simulator.interpreter`): ``TaskTimedOut`` for closed tasks, heartbeats accepted without
``HeartbeatSeconds``, size limits, a new token per retry, JSONata and ``ecs:runTask`` refused.
"""

from __future__ import annotations

import contextlib
import json
import os
import urllib.request
from collections.abc import Iterator
from unittest import mock

from callback_kit.simulator import interpreter, moto_adapter

_MOTO_MISSING = (
    f"moto's server extra is needed for a local endpoint: pip install 'moto[server]{moto_adapter.SUPPORTED_MOTO}'"
)


@contextlib.contextmanager
def moto_server(*, execute_state_machine: bool = True) -> Iterator[str]:
    """Run moto's server on 127.0.0.1 (a free port) and yield its endpoint URL.

    Example:
        >>> with moto_server() as endpoint:                                     # doctest: +SKIP
        ...     boto3.client("stepfunctions", endpoint_url=endpoint).list_state_machines()
    """
    try:
        import moto.server  # noqa: F401  (the server extra: flask, werkzeug)
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        moto_adapter.require()  # moto itself missing or unsupported: say that, not a deep import error
        raise ImportError(_MOTO_MISSING) from exc

    interpreter.install()  # callbacks answered as on AWS, as in LocalStepFunctions (checks the moto first)
    # patch.dict puts moto's configuration back on exit, as moto's own mock_aws(config=...) does.
    restore_config = mock.patch.dict(moto_adapter.user_config())
    restore_config.start()
    saved_port = os.environ.get("MOTO_PORT")
    server = moto_adapter.threaded_server()
    try:
        server.start()
    except BaseException:
        interpreter.uninstall()
        restore_config.stop()
        raise
    try:
        host, port = server.get_host_and_port()
        # The simulator's own SQS and EventBridge calls go to $MOTO_PORT (default 5000): point them here.
        os.environ["MOTO_PORT"] = str(port)
        endpoint = f"http://{host}:{port}"
        body = json.dumps({"stepfunctions": {"execute_state_machine": execute_state_machine}}).encode()
        request = urllib.request.Request(  # noqa: S310 - http:// on the loopback interface, built here
            endpoint + "/moto-api/config", data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        urllib.request.urlopen(request, timeout=10).close()  # noqa: S310 - as above
        yield endpoint
    finally:
        server.stop()
        interpreter.uninstall()
        restore_config.stop()
        if saved_port is None:
            os.environ.pop("MOTO_PORT", None)
        else:
            os.environ["MOTO_PORT"] = saved_port
