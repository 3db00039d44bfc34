total = compute(alpha, beta)
print(total)
total = compute(alpha, gamma)
print(total)
