const Foo = 1;
let $&$1 = Foo + 2;
console.log($&$1, Foo);
export { Foo };
