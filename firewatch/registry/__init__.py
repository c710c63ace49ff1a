"""The device registry as a service: vendors onboard devices and their broker credentials
(issue 14): issuing and revoking them (``credentials``) and the broker sync (``sync``)."""
