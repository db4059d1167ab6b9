"""The canteen kiosk: the staff's page served by the edge daemon on the school network."""

PAGE = "kiosk"  # the page's name in the store's web_sessions
