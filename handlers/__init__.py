"""Example callback workers for the SAM application in ``template.yaml``.

Each module is self-contained (it imports only callback_kit, pydantic and the standard library), because SAM
packages ``handlers/`` as each function's code root, where the modules are top-level (``order_check.handler``),
while locally they are ``handlers.order_check.handler``.
"""
