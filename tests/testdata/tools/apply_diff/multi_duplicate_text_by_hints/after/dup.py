def a():
    return 10


def b():
    return 1


def c():
    return 30
