const Foo = 1;
let foo = Foo + 2;
console.log(foo, Foo);
export { Foo };
