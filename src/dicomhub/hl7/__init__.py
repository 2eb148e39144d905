"""HL7 v2 orders and patient updates into the Modality Worklist.

``mapping`` turns a received message into worklist changes (pure functions); ``listener``
receives messages over MLLP, applies them to the worklist and acknowledges them.
"""
