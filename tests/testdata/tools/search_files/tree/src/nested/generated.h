// TODO generated
