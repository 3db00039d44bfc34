const Bar = 1;
let foo = Bar + 2;
console.log(foo, Bar);
export { Bar };
