total = compute(alpha, beta)
print(total)
total = compute(alpha, delta)
print(total)
