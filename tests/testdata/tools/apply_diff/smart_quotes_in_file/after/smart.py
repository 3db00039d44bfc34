title = "Hi"
end
