"""aiomove's sans-IO DICOM protocol core (low-level, public).

No sockets, no clock, no logging, no filesystem: bytes and calls in, bytes and events out, in
the manner of h11. Time is an argument (`now`) and the next deadline a property.

- `pdu`, `codec`, `framer`: the PS3.8 §9.3 PDUs, their bytes, and incremental framing.
- `fsm`, `connection`, `events`: the PS3.8 §9.2 state machine as data and the upper-layer
  `Connection` that runs it.
- `negotiation`: presentation contexts and role selection (PS3.8 §9.3.2.2, PS3.7 D.3.3.4).
- `dimse`, `pdata`, `status`, `uids`: DIMSE command sets (PS3.7 §9, Annex E), P-DATA
  fragmentation and reassembly, status codes (PS3.7 Annex C), UIDs.
"""
