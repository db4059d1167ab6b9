"""What the edge's own web pages share (the canteen kiosk today; the teacher's pass page and the
card desk later): per-device staff sessions stored hashed and revocable (``sessions``), a global
limit on failed sign-ins, CSRF tokens and the console's security headers (``guard``)."""
