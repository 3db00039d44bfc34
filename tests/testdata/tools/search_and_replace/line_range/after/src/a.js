const Foo = 1;
let foo = Qux + 2;
console.log(foo, Qux);
export { Foo };
