#include <stdio.h>

// TODO: parse arguments
int main(void) {
  puts("hello");
  return 0;
}
