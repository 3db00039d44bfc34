greeting = "こんにちは"
emoji = "😀"
