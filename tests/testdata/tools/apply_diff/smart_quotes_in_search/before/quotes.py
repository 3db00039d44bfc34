message = "Don't panic"
note = "ok"
