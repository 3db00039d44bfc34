// helpers
int add(int a, int b) { return a + b; }
// TODO: more helpers
