x = 'short'
next = 1
