function a() {
  return 1;
}
// rest of code unchanged
