import os
import sys


def load_config(path):
    with open(path) as handle:
        data = handle.read()
    return parse(data)


def parse(text):
    result = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, value = line.split("=", 1)
        result[key.strip()] = value.strip()
    return result


class Server:
    def __init__(self, host, port):
        self.host = host
        self.port = port

    def start(self):
        print("starting", self.host, self.port)
        return True
