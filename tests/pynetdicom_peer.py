"""A pynetdicom SCP used as a test-only peer: prints its bound port on stdout, serves until killed.

Usage: pynetdicom_peer.py [--ae AE] [--no-verification]
"""

from __future__ import annotations

import argparse
import threading

from pynetdicom import AE, evt

VERIFICATION = "1.2.840.10008.1.1"
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ae", default="PYNETDICOM")
    parser.add_argument("--no-verification", action="store_true")
    args = parser.parse_args()
    ae = AE(ae_title=args.ae)
    if args.no_verification:
        ae.add_supported_context(CT_IMAGE_STORAGE)
    else:
        ae.add_supported_context(VERIFICATION)
    server = ae.start_server(
        ("127.0.0.1", 0), block=False, evt_handlers=[(evt.EVT_C_ECHO, lambda event: 0x0000)]
    )
    assert server is not None
    print(server.server_address[1], flush=True)
    threading.Event().wait()  # serve (in pynetdicom's threads) until the test terminates us


if __name__ == "__main__":
    main()
