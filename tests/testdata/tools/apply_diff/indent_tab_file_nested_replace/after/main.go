func main() {
	if ok {
		for i := 0; i < 3; i++ {
			run()
		}
	}
}
