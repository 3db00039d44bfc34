message = "Keep calm"
note = "ok"
