var Foo /* was const */ = 1;
var foo /* was let */ = Foo + 2;
console.log(foo, Foo);
export { Foo };
