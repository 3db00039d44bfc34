const baz = 1;
let baz = baz + 2;
console.log(baz, baz);
export { baz };
