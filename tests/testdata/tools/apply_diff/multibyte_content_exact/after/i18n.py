greeting = "こんにちは"
emoji = "🚀"
